"""A minimal QMP client (QEMU's JSON machine protocol) on a unix socket: enough to pause a guest,
migrate it into a file, resume it, and ask how that went. Events are read and dropped."""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self


class QmpError(Exception):
    """QEMU answered a command with an error, or the monitor went away."""


class Qmp:
    def __init__(self, path: Path, timeout: float) -> None:
        """Connect (QEMU may still be creating the socket) and leave capabilities negotiation."""
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(path))
                break
            except OSError as exc:
                sock.close()
                if time.monotonic() >= deadline:
                    raise QmpError(f"no QMP monitor at {path}: {exc}") from exc
                time.sleep(0.02)
        sock.settimeout(timeout)
        self._sock = sock
        self._reader = sock.makefile("rb")
        self._read()  # the greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        try:
            line = self._reader.readline()
        except OSError as exc:
            raise QmpError(f"the QMP monitor did not answer: {exc}") from exc
        if not line:
            raise QmpError("the QMP monitor closed (QEMU exited)")
        message: dict[str, Any] = json.loads(line)
        return message

    def execute(self, command: str, **arguments: object) -> Any:
        request: dict[str, object] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        try:
            self._sock.sendall(json.dumps(request).encode() + b"\n")
        except OSError as exc:
            raise QmpError(f"the QMP monitor went away: {exc}") from exc
        while True:
            message = self._read()
            if "error" in message:
                error = message["error"]
                raise QmpError(f"{command}: {error.get('desc', error)}")
            if "return" in message:
                return message["return"]
            # An asynchronous event ("event": "STOP", ...): not an answer.

    def close(self) -> None:
        self._reader.close()
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
