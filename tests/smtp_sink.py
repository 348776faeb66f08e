"""A real SMTP server for the end-to-end tests (aiosmtpd).

Listens on 127.0.0.1:PORT (0: a free port), prints the port on the first line
of stdout once it accepts connections, and writes every message it accepts to
DIR as one JSON file (envelope, decoded headers, plain-text body) before it
answers 250, so a mail the client saw accepted is already on disk.

    python3 tests/smtp_sink.py --port 0 --dir /tmp/mails
"""

import argparse
import asyncio
import json
import os
import uuid
from email import message_from_bytes, policy

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, directory):
        self.directory = directory

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        text = message.get_body(preferencelist=("plain",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(message["from"] or ""),
            "to": str(message["to"] or ""),
            "subject": str(message["subject"] or ""),
            "message_id": str(message["message-id"] or ""),
            "body": text.get_content().replace("\r\n", "\n") if text is not None else "",
        }
        name = f"{uuid.uuid4().hex}.json"
        partial = os.path.join(self.directory, f".{name}.partial")
        with open(partial, "w", encoding="utf-8") as out:
            json.dump(record, out, ensure_ascii=False)
        os.replace(partial, os.path.join(self.directory, name))
        return "250 Message accepted for delivery"


async def serve(port, directory):
    os.makedirs(directory, exist_ok=True)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Sink(directory), enable_SMTPUTF8=True, hostname="smtp-sink.test"),
        host="127.0.0.1",
        port=port,
        reuse_address=True,
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.dir))


if __name__ == "__main__":
    main()
