"""One hostile client beside honest spectators: what the others see, quiet and flooded.

For each kind of flood, one attacker process (on its own connection, which
it opens again as soon as the server closes it, as an attacker would) floods
``serve`` while the load-test harness measures ``--clients`` spectators;
between floods the same measurement runs quiet. Reported per flood: the
spectators' tick delay p99 and ticks per second against the quiet runs
beside it, the connections the server closed (how often the attacker had
to come back), and the server's RSS before and after.

Kinds: ``pings`` (125-byte pings, pongs read), ``pings-unread`` (pings, and
nothing read), ``pongs`` (unsolicited), ``fragments`` (one message in
one-byte fragments, never finished), ``messages`` (``{"type":"ping"}`` text
messages). Run with ``python -m bench.flood [--clients 1000] [--seconds 20]``.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import free_port, harness_command, start_serve, wait_healthy

KINDS = ("pings", "pings-unread", "pongs", "fragments", "messages")


def _frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes(((0x80 if fin else 0) | opcode, 0x80 | len(payload))) + mask + masked


def _flood_bytes(kind: str) -> bytes:
    if kind in ("pings", "pings-unread"):
        return _frame(0x9, b"p" * 125) * 2000
    if kind == "pongs":
        return _frame(0xA, b"q") * 100_000
    if kind == "fragments":
        return _frame(0x1, b"{", fin=False) + _frame(0x0, b" ", fin=False) * 20_000
    return _frame(0x1, b'{"type":"ping"}') * 5000


def attacker(port: int, kind: str, seconds: float, out: Any) -> None:
    """Flood, and connect again whenever the server hangs up, for ``seconds``."""
    payload = _flood_bytes(kind)
    deadline = time.monotonic() + seconds
    connections = 0
    while time.monotonic() < deadline:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            time.sleep(0.01)
            continue
        connections += 1
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        if kind == "pings-unread":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            while time.monotonic() < deadline:
                sock.sendall(payload)
                if kind != "pings-unread":
                    sock.setblocking(False)
                    try:
                        while sock.recv(65536):
                            pass
                    except BlockingIOError:
                        pass
                    sock.setblocking(True)
        except OSError:
            pass  # closed by the server: come back
        finally:
            sock.close()
    out.send(connections)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def measure(port: int, clients: int, seconds: float) -> dict[str, Any]:
    report = Path(tempfile.mkdtemp(prefix="pp-bench-flood-")) / "run.json"
    subprocess.run(
        harness_command(
            port,
            "--clients",
            str(clients),
            "--bettors",
            "0",
            "--procs",
            "1",
            "--duration",
            str(seconds),
            "--json",
            str(report),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    if not report.exists():  # the harness itself could not run (nor connect)
        return {"tick_p99_ms": float("inf"), "ticks_per_s": 0.0, "ticks_missed": None}
    result = json.loads(report.read_text())
    return {
        "tick_p99_ms": result["tick_delay_ms"]["p99"],
        "ticks_per_s": round(result["ticks_received"] / max(1, clients) / seconds, 2),
        "ticks_missed": result["ticks_missed"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--kinds", nargs="*", default=list(KINDS), choices=KINDS)
    args = parser.parse_args(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="pp-bench-flood-"))
    port = free_port()
    server = start_serve(data_dir, port, "--betting-ms", "1000", "--cooldown-ms", "500")
    out: dict[str, Any] = {"clients": args.clients, "seconds": args.seconds, "floods": {}}
    try:
        wait_healthy(port)
        quiet = [measure(port, args.clients, args.seconds)]
        for kind in args.kinds:
            before = rss_kib(server.pid)
            parent, child = mp.Pipe()
            proc = mp.Process(target=attacker, args=(port, kind, args.seconds + 3, child))
            proc.start()
            flooded = measure(port, args.clients, args.seconds)
            connections = parent.recv()
            proc.join()
            after = rss_kib(server.pid)
            quiet.append(measure(port, args.clients, args.seconds))
            beside = quiet[-2:]
            p99_quiet = statistics.median(q["tick_p99_ms"] for q in beside)
            rate_quiet = statistics.median(q["ticks_per_s"] for q in beside)
            out["floods"][kind] = {
                **flooded,
                "quiet_tick_p99_ms": p99_quiet,
                "p99_ratio": round(flooded["tick_p99_ms"] / p99_quiet, 2),
                "tick_rate_ratio": round(flooded["ticks_per_s"] / rate_quiet, 3),
                "attacker_connections": connections,
                "server_rss_kib": [before, after],
            }
            print(kind, out["floods"][kind], flush=True)
        out["quiet"] = quiet
    finally:
        server.terminate()
        server.wait(60)
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
