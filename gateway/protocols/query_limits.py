"""The limits of search, reports and requests that the command line's help names: apart from
search.py, reports.py and requests.py so that `--help` need not load SQLAlchemy."""

DEFAULT_LIMIT, MAX_LIMIT = 50, 500  # protocols a search answers with, by default and at most
GROUPS = ("category", "profile", "channel")  # what a compliance report may be grouped by
DEFAULT_DAYS = 30  # a report without `from`: the 30 days ending with `to`
NOTE_MAX = 1000  # characters in the note that marks a postal request fulfilled
