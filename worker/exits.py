"""The `worker` command's exit codes, shared by the argument parser (cli) and the handlers
(commands) without either importing the other."""

EXIT_OK = 0  # all went well
EXIT_FAILED = 1  # a source or delivery failed
EXIT_CONFIG = 2  # bad config or command line
