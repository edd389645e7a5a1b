#!/usr/bin/env python3
"""Send one chat completion to an AI Machine (an instance provisioned with --model-id ID --mode
private) and print the reply as JSON: reply, finish_reason, usage, model, endpoint.

The parser and the command live in x402_compute.commands.ai: this file is the entry point."""

from x402_compute import cli
from x402_compute.commands import ai

p = ai.ai_chat_parser()
handler = ai.chat

if __name__ == "__main__":
    cli.run(p, handler)
