"""Empties one Redis database (`SELECT n`, `FLUSHDB`) without a Redis client.

Usage: redis_flush.py HOST PORT DB
"""

import socket
import sys


def command(*args):
    out = f"*{len(args)}\r\n"
    for arg in args:
        out += f"${len(arg.encode())}\r\n{arg}\r\n"
    return out.encode()


def main():
    host, port, db = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with socket.create_connection((host, port), timeout=5) as conn:
        conn.sendall(command("SELECT", db) + command("FLUSHDB"))
        answer = b""
        while answer.count(b"\r\n") < 2:
            chunk = conn.recv(1024)
            if not chunk:
                break
            answer += chunk
    if answer != b"+OK\r\n+OK\r\n":
        sys.exit(f"Redis did not flush database {db}: {answer!r}")


if __name__ == "__main__":
    main()
