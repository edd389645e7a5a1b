#!/usr/bin/env python3
"""Serve every command as an MCP tool (stdio by default, --http PORT for Streamable HTTP on
127.0.0.1). Each tool runs its script's parser and handler in-process; spending tools stay
refused until the server is started with COMPUTE_MCP_ALLOW_SPEND=1. See references/mcp.md."""

from x402_compute.mcp import main

if __name__ == "__main__":
    main()
