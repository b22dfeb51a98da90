"""`python -m bench.unaudited ARGS`: the `chat-archive` command line with the API's audit hook left out.

Only the API benchmark's baseline runs it, to show what recording every read costs
(`search/transcript: with the audit trail vs without`). chat-archive itself has no
way to turn the audit trail off.
"""

import sys

import query_api.audit

query_api.audit.install = lambda app: None

from chat_archive.cli import main  # noqa: E402 - after the hook is left out

sys.exit(main())
