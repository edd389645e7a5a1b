"""x402-compute sandbox: a local compute API whose payments settle on in-process chains.

Kept import-free on purpose: the chains pull in py-evm, web3 and solders, which cost seconds,
and code that only needs the network table should not pay for them.
"""
