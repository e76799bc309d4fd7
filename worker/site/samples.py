"""Article sets of the local news site: the realistic sample and generated (synthetic) ones."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from importlib import resources

from worker.site.articles import SITE_TZ, SiteArticle, aware, slugify

__all__ = ["sample_articles", "synthetic_articles"]


def sample_articles() -> list[SiteArticle]:
    """The realistic articles of worker/site_data/articles.json, in file order (oldest first)."""
    raw = resources.files("worker").joinpath("site_data/articles.json").read_text("utf-8")
    return [
        SiteArticle(
            id=int(item["id"]),
            slug=item["slug"],
            title=item["title"],
            summary=item["summary"],
            published=aware(datetime.fromisoformat(item["published"])),
            categories=tuple(item["categories"]),
        )
        for item in json.loads(raw)["articles"]
    ]


_COUNTRIES = (
    "Kazakhstan",
    "Kyrgyzstan",
    "Uzbekistan",
    "Tajikistan",
    "Turkmenistan",
    "Afghanistan",
    "Mongolia",
    "China",
    "Türkiye",
    "Azerbaijan",
)
_TOPICS = (
    "Rail Freight",
    "Water Management",
    "Renewable Energy",
    "Digital Trade",
    "Critical Minerals",
    "Higher Education",
    "Tourism",
    "Logistics",
    "Agriculture",
    "Glacier Conservation",
)
_PROJECTS = (
    "China\u2013Kyrgyzstan\u2013Uzbekistan Railway",
    "Trans-Caspian Route",
    "Trans-Afghan Railway",
    "Belt and Road Initiative",
    "Digital Silk Road",
    "Kambarata-1 Hydropower Plant",
)
_TITLES = (
    "{a} and {b} Sign {n} Agreements on {topic}",
    "{a} Eyes ${n}0 Million Investment in {project}",
    "{a} Launches New {topic} Programme",
    "Opinion: What the {project} Means for {a}",
    "{a}\u2019s Parliament Approves {topic} Reform",
    "{a} & {b} Discuss {topic} and the {project}",
    "Interview: {a}\u2019s Minister on \u201c{topic}\u201d",
)
_SENTENCES = (
    "Officials in {a} said talks with {b} on {topic_l} would continue later this year.",
    "The {project} is expected to cut transit times between {a} and {b}.",
    "Trade between the two countries grew by {n}% last year, according to official data.",
    "Experts say the plan could attract up to ${n}0 million in new investment.",
    "The agreement also covers {topic_l}, a priority for both governments.",
)
_EXTRAS = (
    "Министерство транспорта сообщило о новых маршрутах.",
    '[caption id="attachment_{id}" align="aligncenter" width="1600"] Image: TCA[/caption]',
    '[video width="1920" height="1080" mp4="https://timesca.com/wp-content/uploads/2025/06/{id}.mp4"]'
    "[/video]",
)


def synthetic_articles(n: int, *, seed: int = 1) -> list[SiteArticle]:
    """`n` generated articles, deterministic for a seed, oldest first; the newest is dated
    2025-06-30 20:00 +05:00 and the others 15-60 minutes apart."""
    rng = random.Random(seed)
    moment = datetime(2025, 6, 30, 20, 0, tzinfo=SITE_TZ)
    newest_first: list[SiteArticle] = []
    for i in range(n):
        article_id = 100_000 + (n - i) * 3
        a, b = rng.sample(_COUNTRIES, 2)
        values = {
            "a": a,
            "b": b,
            "n": rng.randint(2, 40),
            "topic": rng.choice(_TOPICS),
            "project": rng.choice(_PROJECTS),
            "id": article_id,
        }
        values["topic_l"] = str(values["topic"]).lower()
        title = rng.choice(_TITLES).format(**values)
        sentences = [s.format(**values) for s in rng.sample(_SENTENCES, 3)]
        if i % 9 == 4:
            sentences.insert(1, _EXTRAS[0])
        if i % 11 == 5:
            sentences.insert(1, _EXTRAS[1].format(**values))
        if i % 13 == 6:
            sentences.append(_EXTRAS[2].format(**values))
        newest_first.append(
            SiteArticle(
                id=article_id,
                slug=f"{slugify(title)}-{article_id}",
                title=title,
                summary=" ".join(sentences),
                published=moment.astimezone(UTC),
                categories=("news",) if i % 10 else ("news", "opinion"),
            )
        )
        moment -= timedelta(minutes=rng.randint(15, 60))
    return newest_first[::-1]
