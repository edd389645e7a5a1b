"""In-process chains: py-evm (eth-tester) for the EVM networks, LiteSVM for Solana.

Submodules are imported on demand (`from x402_compute_sandbox.chains.evm import EvmChain`) because each
one costs about a second of imports.
"""
