"""The process that runs tritonclient for the tests (see `support.v2_clients`), under the
interpreter of `.venv/v2-clients`: it reads calls on stdin and writes their results on stdout,
each a pickle after its 4-byte length. A refusal comes back as `Refused`; anything else that
went wrong as a `RuntimeError` carrying the worker's traceback."""

from __future__ import annotations

import pickle
import struct
import sys
import traceback

from support.v2_clients import Refused, run_in_worker


def main() -> None:
    calls, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # whatever a library prints must not corrupt the answers
    while header := calls.read(4):
        (size,) = struct.unpack("<I", header)
        key, method, args, kwargs = pickle.loads(calls.read(size))
        try:
            reply: tuple = ("ok", run_in_worker(key, method, args, kwargs))
        except Refused as refused:
            reply = ("error", refused)
        except Exception:
            reply = ("error", RuntimeError(traceback.format_exc()))
        data = pickle.dumps(reply)
        answers.write(struct.pack("<I", len(data)) + data)
        answers.flush()


if __name__ == "__main__":
    main()
