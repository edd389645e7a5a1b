#!/usr/bin/env python3
"""Send one chat completion to an AI Machine (an instance provisioned with --model-id ID --mode
private) and print the reply as JSON: reply, finish_reason, usage, model, endpoint.

The endpoint is the instance's own http://<ip>:<port>/v1, read from its record; the API key is
the one provision.py saved (0600) in the state folder, sent only to that endpoint. That is plain
http to the machine's IP: the prompt, the reply and the key cross the network unencrypted."""

from x402_compute import cli
from x402_compute.commands import ai

p = cli.parser(
    "ai_chat.py",
    __doc__,
    examples=(
        "python scripts/ai_chat.py 3f1c2a9e-0000-4000-8000-000000000001 \"Say hello in five words\"\n"
        "python scripts/ai_chat.py 3f1c2a9e-0000-4000-8000-000000000001 \"Summarise: ...\" --system \"Be brief\" --max-tokens 200"
    ),
)
ai.add_options(p)
handler = ai.chat

if __name__ == "__main__":
    cli.run(p, handler)
