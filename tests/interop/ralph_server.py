"""Run a real Ralph LRS (ralph-malph, unmodified) with its file-system backend, for the interop test.

Ralph 5.1's file-system LRS writes every statement batch with the backend's default operation
type, CREATE, which refuses once its file exists: only the first POST would ever succeed. Its
documented way out is the APPEND operation type, which the server offers no setting for, so this
launcher sets it as the backend's default before starting Ralph's own ASGI app with uvicorn.

Configuration comes from Ralph's environment variables (RALPH_RUNSERVER_BACKEND=fs,
RALPH_BACKENDS__LRS__FS__DEFAULT_DIRECTORY_PATH, RALPH_AUTH_FILE).
Usage: python ralph_server.py PORT
"""

import sys

import uvicorn
from ralph.backends.data.base import BaseOperationType
from ralph.backends.lrs.fs import FSLRSBackend

FSLRSBackend.default_operation_type = BaseOperationType.APPEND

uvicorn.run("ralph.api:app", host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
