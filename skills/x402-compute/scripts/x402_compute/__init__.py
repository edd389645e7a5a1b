"""x402-compute: the shared client library behind the skill's scripts.

Rent VPS and GPU machines from the x402 compute API and pay per prepaid hour
with stablecoins over HTTP 402. Heavy dependencies (eth_account, solders,
pympp, ows) are imported only inside the code paths that need them, so
``--help`` and read-only commands start fast.
"""

__version__ = "0.1.0"
USER_AGENT = f"x402-compute/{__version__}"
