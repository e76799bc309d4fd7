"""Per-source bookkeeping: baselines, unfinished passes and who owns their mark, the counter's
total and the last complete walk, pass outcomes and their status."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from worker.store.engine import StoreBase
from worker.store.helpers import _aware, _cut, _utcnow
from worker.store.rows import PassOutcome, PassStart, SourceState, SourceStatus
from worker.store.tables import UTCDateTime, article_sources, articles, robots_txt, sources

# a resume mark older than this whose pass never said it ended (its process died) is taken over
# by the next pass; taking over the mark of a pass still running costs nothing, since that pass
# puts its mark back if it is cut off (`cut_pass`)
STALE_MARK = timedelta(hours=1)

# the columns of a SourceState, in its order
_STATE = (
    sources.c.baselined_at,
    sources.c.listed_total,
    sources.c.walked_at,
    sources.c.walk_seen,
    sources.c.walk_total,
    sources.c.validated_url,
    sources.c.etag,
    sources.c.last_modified,
)


# Statements a pass runs every time, built once with bind parameters: SQLAlchemy's building of a
# statement and of its cache key was most of the CPU of a pass's bookkeeping (py-spy, GIL held:
# ~40 % of the store threads' time at 10,000 sources), more than SQLite's own work.
_S = sources.c
_NAME = sa.bindparam("b_name", type_=sa.Text)
_PASS_ID = sa.bindparam("b_pass_id", type_=sa.Text)
_AT = sa.bindparam("b_at", type_=UTCDateTime)
_MARK_AND_STATE = sa.select(_S.unfinished_since, _S.unfinished_by, *_STATE).where(_S.name == _NAME)
_LOCK_MARK_AND_STATE = _MARK_AND_STATE.with_for_update()
_SET_MARK = (
    sa.update(sources).where(_S.name == _NAME).values(unfinished_since=_AT, unfinished_by=_PASS_ID)
)
_TAKE_MARK = sa.update(sources).where(_S.name == _NAME).values(unfinished_by=_PASS_ID)
_MINE = _S.unfinished_by == _PASS_ID
# end_pass's columns, each with its own bind parameter (named apart from the columns)
_END_VALUES = (
    "listed_total",
    "walked_at",
    "walk_seen",
    "walk_total",
    "validated_url",
    "etag",
    "last_modified",
    "last_pass_at",
    "last_error",
    "last_pages",
    "last_new",
    "last_alerts",
    "last_duration",
    "last_success_at",
)
_END_STATEMENTS: dict[tuple[bool, frozenset[str], bool | None], Any] = {}


def _end_statement(baseline: bool, columns: frozenset[str], ok: bool | None) -> Any:
    """end_pass's one UPDATE of a source's row (the mark cleared if it is this pass's, the
    baseline kept if it was set, `columns` from parameters `v_<column>`, and with an outcome
    (`ok` not None) the failures in a row counted and returned), built once per shape."""
    key = (baseline, columns, ok)
    stmt = _END_STATEMENTS.get(key)
    if stmt is None:
        values: dict[str, Any] = {
            "unfinished_since": sa.case((_MINE, sa.null()), else_=_S.unfinished_since),
            "unfinished_by": sa.case((_MINE, sa.null()), else_=_S.unfinished_by),
        }
        if baseline:
            values["baselined_at"] = sa.func.coalesce(_S.baselined_at, _AT)
        for column in _END_VALUES:
            if column in columns:
                values[column] = sa.bindparam(f"v_{column}", type_=_S[column].type)
        if ok is not None:
            values["failures"] = sa.literal(0) if ok else _S.failures + 1
        stmt = sa.update(sources).where(_S.name == _NAME).values(values)
        if ok is not None:
            stmt = stmt.returning(_S.failures)
        _END_STATEMENTS[key] = stmt
    return stmt


def _listed_since(source: str, since: datetime) -> sa.Select[tuple[str]]:
    return (
        sa.select(articles.c.url)
        .join(article_sources, article_sources.c.article_id == articles.c.id)
        .where(article_sources.c.source == source, article_sources.c.first_seen >= since)
    )


class SourcesMixin(StoreBase):
    """The `Store` methods that keep the `sources` table."""

    def is_baselined(self, source: str) -> bool:
        with self._tx("reading the source's state", write=False) as conn:
            at = conn.scalar(sa.select(sources.c.baselined_at).where(sources.c.name == source))
        return at is not None

    def mark_baselined(self, source: str, *, at: datetime | None = None) -> None:
        """Record that `source` finished its first complete pass (the first time is kept)."""
        at = _aware(at, "at") if at is not None else _utcnow()
        with self._tx("recording the source's baseline") as conn:
            self._mark_baselined(conn, source, at)

    def _mark_baselined(self, conn: sa.Connection, source: str, at: datetime) -> None:
        stmt = self._insert(sources).values(name=source, baselined_at=at)
        stmt = stmt.on_conflict_do_update(
            index_elements=[sources.c.name],
            set_={
                "baselined_at": sa.func.coalesce(sources.c.baselined_at, stmt.excluded.baselined_at)
            },
        )
        conn.execute(stmt)

    def source_state(self, source: str) -> SourceState:
        """What a pass needs to know of `source` before it starts (all None for a new source)."""
        with self._tx("reading the state of a source", write=False) as conn:
            row = conn.execute(sa.select(*_STATE).where(sources.c.name == source)).first()
        if row is None:
            return SourceState()
        return SourceState(*row)

    def start_pass(self, source: str, *, pass_id: str, at: datetime | None = None) -> PassStart:
        """`begin_pass` and `source_state` in one transaction, and, when the pass resumes one
        that was cut off (`unfinished` is set) over a source with a baseline, the urls it listed
        since then (`urls_listed_since`): all a pass reads and writes before its first page."""
        at = _aware(at, "at") if at is not None else _utcnow()
        with self._tx("recording the start of a pass") as conn:
            since, row = self._begin(conn, source, pass_id, at)
            state = SourceState(*row)
            met: frozenset[str] = frozenset()
            if since is not None and state.baselined_at is not None:
                met = frozenset(conn.scalars(_listed_since(source, since)))
        return PassStart(state=state, unfinished=since, met=met)

    def begin_pass(
        self, source: str, *, pass_id: str, at: datetime | None = None
    ) -> datetime | None:
        """Record that pass `pass_id` of `source` starts; return when the earliest unfinished
        pass began (None: every earlier pass reached its end).

        The mark belongs to one pass at a time: the one that set it, or the one that took it
        over because its pass ended cut off (`cut_pass`) or it is older than STALE_MARK (its
        process died). Only its owner clears it (`finish_pass`), so a pass of another process
        over the same source, running meanwhile, never clears the mark of one that is still
        running and may yet be cut off.
        """
        at = _aware(at, "at") if at is not None else _utcnow()
        with self._tx("recording the start of a pass") as conn:
            since, _ = self._begin(conn, source, pass_id, at)
        return since

    def _begin(
        self, conn: sa.Connection, source: str, pass_id: str, at: datetime
    ) -> tuple[datetime | None, tuple[Any, ...]]:
        """Take or set the mark (see begin_pass); (its start, the source's _STATE row)."""
        lock = _LOCK_MARK_AND_STATE if self.dialect == "postgresql" else _MARK_AND_STATE
        row = conn.execute(lock, {"b_name": source}).first()
        if row is None:  # a new source: its row first (another process may insert it too)
            conn.execute(self._insert(sources).values(name=source).on_conflict_do_nothing())
            row = conn.execute(lock, {"b_name": source}).one()
        since, owner = row[0], row[1]
        if since is None:
            conn.execute(_SET_MARK, {"b_name": source, "b_at": at, "b_pass_id": pass_id})
        elif owner is None or since < at - STALE_MARK:
            # take over a mark nobody will clear
            conn.execute(_TAKE_MARK, {"b_name": source, "b_pass_id": pass_id})
        # else another pass runs and owns it
        return since, tuple(row[2:])

    def finish_pass(
        self,
        source: str,
        *,
        pass_id: str,
        listed_total: int | None = None,
        walk: tuple[int, int | None] | None = None,
        at: datetime | None = None,
    ) -> None:
        """Pass `pass_id` of `source` reached its end: its mark (if it owns it) is cleared, the
        counter's total is kept for the next pass, and a walk of the whole listing records the
        distinct articles it saw and the total they are compared with (`walk`)."""
        self.end_pass(source, pass_id=pass_id, listed_total=listed_total, walk=walk, at=at)

    def end_pass(
        self,
        source: str,
        *,
        pass_id: str,
        listed_total: int | None = None,
        walk: tuple[int, int | None] | None = None,
        baseline: bool = False,
        validators: tuple[str, str | None, str | None] | None = None,
        outcome: PassOutcome | None = None,
        at: datetime | None = None,
    ) -> int | None:
        """Everything a pass that reached its end records, in one transaction: `finish_pass`;
        with `baseline`, `mark_baselined`; with `validators` (url, etag, last_modified),
        `save_validators`; with `outcome`, `record_pass`, whose failures in a row it returns
        (None without an outcome)."""
        at = _aware(at, "at") if at is not None else _utcnow()
        values: dict[str, Any] = {}
        if listed_total is not None:
            values["listed_total"] = listed_total
        if walk is not None:
            values.update(walked_at=at, walk_seen=walk[0], walk_total=walk[1])
        with self._tx("recording the end of a pass") as conn:
            # the source's row is there (start_pass made it): everything in one UPDATE
            columns = dict(values)
            if validators is not None:
                columns.update(_validator_values(*validators))
            if outcome is not None:
                columns.update(_outcome_values(outcome, at))
            stmt = _end_statement(
                baseline, frozenset(columns), None if outcome is None else outcome.ok
            )
            params = {f"v_{k}": v for k, v in columns.items()}
            params.update(b_name=source, b_pass_id=pass_id, b_at=at)
            result = conn.execute(stmt, params)
            if outcome is not None:
                row = result.first()
                if row is not None:
                    return int(row[0] or 0)
            elif result.rowcount:
                return None
            # no row (removed meanwhile): the statements one by one, which insert it
            if baseline:
                self._mark_baselined(conn, source, at)
            conn.execute(
                sa.update(sources)
                .where(sources.c.name == source, sources.c.unfinished_by == pass_id)
                .values(unfinished_since=None, unfinished_by=None)
            )
            if values:
                conn.execute(sa.update(sources).where(sources.c.name == source).values(**values))
            if validators is not None:
                self._save_validators(conn, source, *validators)
            if outcome is not None:
                return self._record_pass(conn, source, outcome, at)
        return None

    def cut_pass(
        self,
        source: str,
        *,
        pass_id: str,
        since: datetime,
        listed_total: int | None = None,
        outcome: PassOutcome | None = None,
        at: datetime | None = None,
    ) -> int | None:
        """Pass `pass_id` of `source`, begun at `since`, was cut off (an error, a stop): the mark
        goes back to `since` if another pass cleared it meanwhile, and belongs to nobody, so
        the next pass takes it over and resumes it. With `outcome`, `record_pass` in the same
        transaction, whose failures in a row it returns (None without an outcome)."""
        since = _aware(since, "since")
        ensure = self._insert(sources).values(name=source).on_conflict_do_nothing()
        earlier = sa.or_(
            sources.c.unfinished_since.is_(None),
            sources.c.unfinished_since > sa.literal(since, UTCDateTime),
        )
        values: dict[str, Any] = {
            "unfinished_since": sa.case(
                (earlier, sa.literal(since, UTCDateTime)), else_=sources.c.unfinished_since
            ),
            "unfinished_by": None,
        }
        if listed_total is not None:
            values["listed_total"] = listed_total
        with self._tx("recording a pass that was cut off") as conn:
            conn.execute(ensure)
            conn.execute(sa.update(sources).where(sources.c.name == source).values(**values))
            if outcome is not None:
                at = _aware(at, "at") if at is not None else _utcnow()
                return self._record_pass(conn, source, outcome, at)
        return None

    def urls_listed_since(self, source: str, since: datetime) -> set[str]:
        """Canonical URLs that `source` listed for the first time at or after `since`."""
        query = _listed_since(source, _aware(since, "since"))
        with self._tx("reading the source's recent articles", write=False) as conn:
            return set(conn.scalars(query))

    def record_pass(
        self,
        source: str,
        *,
        ok: bool,
        error: str | None,
        pages: int,
        new: int,
        alerts: int,
        duration: float,
        at: datetime | None = None,
    ) -> int:
        """Record the outcome of one pass over `source` (last_success_at only moves when ok);
        return its failed passes in a row (0 after a success: the breaker's count)."""
        at = _aware(at, "at") if at is not None else _utcnow()
        outcome = PassOutcome(ok, error, pages, new, alerts, duration)
        with self._tx("recording a pass") as conn:
            return self._record_pass(conn, source, outcome, at)

    def _record_pass(
        self, conn: sa.Connection, source: str, outcome: PassOutcome, at: datetime
    ) -> int:
        ok = outcome.ok
        values = _outcome_values(outcome, at)
        stmt = self._insert(sources).values(name=source, failures=0 if ok else 1, **values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[sources.c.name],
            set_={**values, "failures": 0 if ok else sources.c.failures + 1},
        )
        conn.execute(stmt)
        failures = conn.scalar(sa.select(sources.c.failures).where(sources.c.name == source))
        return int(failures or 0)

    def save_validators(
        self, source: str, url: str, *, etag: str | None, last_modified: str | None
    ) -> None:
        """Keep the ETag / Last-Modified of the last answer to `url`, the first URL of a pass
        over `source` (both None: forget them, the next pass fetches it in full)."""
        with self._tx("recording a page's validators") as conn:
            self._save_validators(conn, source, url, etag, last_modified)

    def _save_validators(
        self, conn: sa.Connection, source: str, url: str, etag: str | None, modified: str | None
    ) -> None:
        values = _validator_values(url, etag, modified)
        stmt = self._insert(sources).values(name=source, **values)
        stmt = stmt.on_conflict_do_update(index_elements=[sources.c.name], set_=values)
        conn.execute(stmt)

    def robots_get(self, origin: str) -> tuple[datetime, int, str] | None:
        """The robots.txt stored for `origin` ("http://host:port"): (fetched_at, status, body)."""
        cols = (robots_txt.c.fetched_at, robots_txt.c.status, robots_txt.c.body)
        with self._tx("reading a robots.txt", write=False) as conn:
            row = conn.execute(sa.select(*cols).where(robots_txt.c.origin == origin)).first()
        return None if row is None else (row[0], row[1], row[2])

    def robots_put(self, origin: str, *, fetched_at: datetime, status: int, body: str) -> None:
        """Store the robots.txt `origin` answered (every process on the database reads it)."""
        values = {"fetched_at": _aware(fetched_at, "fetched_at"), "status": status, "body": body}
        stmt = self._insert(robots_txt).values(origin=origin, **values)
        stmt = stmt.on_conflict_do_update(index_elements=[robots_txt.c.origin], set_=values)
        with self._tx("storing a robots.txt") as conn:
            conn.execute(stmt)

    def source_status(self, *, passed_since: datetime | None = None) -> list[SourceStatus]:
        """Every source's row, by name; with `passed_since`, only those of sources whose last
        pass was recorded at or after it (a poll of what changed: /healthz's refresh)."""
        query = sa.select(sources).order_by(sources.c.name)
        if passed_since is not None:
            query = query.where(sources.c.last_pass_at >= _aware(passed_since, "passed_since"))
        with self._tx("reading the sources' status", write=False) as conn:
            rows = conn.execute(query).mappings().all()
        return [SourceStatus(**row) for row in rows]


def _outcome_values(outcome: PassOutcome, at: datetime) -> dict[str, Any]:
    """The columns `record_pass` sets (last_success_at only when the pass was ok)."""
    values: dict[str, Any] = {
        "last_pass_at": at,
        "last_error": _cut(outcome.error),
        "last_pages": outcome.pages,
        "last_new": outcome.new,
        "last_alerts": outcome.alerts,
        "last_duration": outcome.duration,
    }
    if outcome.ok:
        values["last_success_at"] = at
    return values


def _validator_values(url: str, etag: str | None, modified: str | None) -> dict[str, Any]:
    """The columns `save_validators` sets. A validator longer than a header a server sends is
    junk: not kept (a cut one never matches)."""
    etag = etag if etag and len(etag) <= 1024 else None
    modified = modified if modified and len(modified) <= 200 else None
    return {
        "validated_url": url if etag or modified else None,
        "etag": etag,
        "last_modified": modified,
    }
