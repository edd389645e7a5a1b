"""The 402 flow: challenges → offers → policy → one signed payload → the paid retry.

Modules:
  model      Offer, Challenge, Signed: the data passed between the pieces
  challenge  parse x402 v1 bodies, x402 v2 PAYMENT-REQUIRED headers and MPP WWW-Authenticate
  schemes/   build and sign one payload per scheme (EIP-3009, ERC-2612 permit, Permit2, Solana exact)
  policy     spend cap, price against the catalog, canonical asset, pinned payee
  journal    a record written before a payment leaves, completed after
  flow       the paid request end to end, never signing twice after an ambiguous outcome
"""
