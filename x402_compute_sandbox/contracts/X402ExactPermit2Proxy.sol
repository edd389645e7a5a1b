// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ISignatureTransferLite} from "./Permit2Lite.sol";

/// @title X402ExactPermit2Proxy — the sandbox's stand-in for x402's `x402ExactPermit2Proxy`.
/// @notice Written from scratch for the x402-compute sandbox; test-only. The sandbox copies this runtime
///         to the proxy's canonical address (0x402085c2…0001) through genesis state. A payer signs a Permit2
///         `PermitWitnessTransferFrom` naming this contract as spender and a witness {to, validAfter}; anyone
///         (the facilitator) may submit it, and the funds can only go to `witness.to`, in exactly
///         `permit.permitted.amount`. Function names, argument layouts and the witness type string match
///         x402's proxy, so calldata built by the x402 SDK's facilitator settles here.
/// @dev Permit2's address is a constant rather than a constructor immutable (as in x402's proxy): runtime
///      placed through genesis state never runs a constructor. Not implemented: the `upto` proxy, the
///      ERC-20 approval gas-sponsoring batch (that is facilitator-side), a reentrancy guard (the only
///      external calls are to the token and Permit2, and Permit2 spends the nonce before it calls the token).
///      Reverts are strings named after x402's custom errors ("PaymentTooEarly", "InvalidDestination", …)
///      because x402's settle-error mapping matches them by substring and eth-tester shows strings readably.
contract X402ExactPermit2Proxy {
    address public constant PERMIT2 = 0x000000000022D473030F116dDEE9F6B43aC78BA3;

    /// Completes Permit2's `PermitWitnessTransferFrom(...,` stub; referenced types in alphabetical order.
    string public constant WITNESS_TYPE_STRING =
        "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,uint256 validAfter)";
    bytes32 public constant WITNESS_TYPEHASH = keccak256("Witness(address to,uint256 validAfter)");

    struct Witness {
        address to;
        uint256 validAfter;
    }

    /// ERC-2612 permit fields from the eip2612GasSponsoring extension (spender is always Permit2).
    struct EIP2612Permit {
        uint256 value;
        uint256 deadline;
        bytes32 r;
        bytes32 s;
        uint8 v;
    }

    event X402ExactSettled(address indexed owner, address indexed to, address indexed token, uint256 amount);

    /// @notice Settles when the owner has already approved Permit2 on the token.
    function settle(
        ISignatureTransferLite.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external {
        _settle(permit, owner, witness, signature);
    }

    /// @notice Settles gaslessly for the payer: first redeems their ERC-2612 permit granting Permit2 the
    ///         allowance, then settles as `settle` does, in one transaction.
    function settleWithPermit(
        EIP2612Permit calldata permit2612,
        ISignatureTransferLite.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external {
        if (permit2612.value < permit.permitted.amount) revert("Permit2612AmountMismatch");
        // The permit's outcome is deliberately ignored: a signed permit is public once broadcast, and a
        // front-runner redeeming it first (consuming its nonce) must not block this payment, since the
        // allowance it wanted is then in place. If no allowance results, Permit2's transferFrom reverts
        // with the token's "exceeds allowance", so nothing moves without one.
        (bool ok,) = permit.permitted.token.call(
            abi.encodeWithSelector(
                0xd505accf, // permit(address,address,uint256,uint256,uint8,bytes32,bytes32)
                owner, PERMIT2, permit2612.value, permit2612.deadline, permit2612.v, permit2612.r, permit2612.s
            )
        );
        ok;
        _settle(permit, owner, witness, signature);
    }

    function _settle(
        ISignatureTransferLite.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) internal {
        if (owner == address(0)) revert("InvalidOwner");
        if (witness.to == address(0)) revert("InvalidDestination");
        if (block.timestamp < witness.validAfter) revert("PaymentTooEarly");
        // The witness binds recipient and start time into the payer's signature: Permit2 recomputes the
        // signed struct hash with it, so a facilitator cannot redirect funds or settle early.
        bytes32 witnessHash = keccak256(abi.encode(WITNESS_TYPEHASH, witness.to, witness.validAfter));
        ISignatureTransferLite(PERMIT2).permitWitnessTransferFrom(
            permit,
            ISignatureTransferLite.SignatureTransferDetails({to: witness.to, requestedAmount: permit.permitted.amount}),
            owner,
            witnessHash,
            WITNESS_TYPE_STRING,
            signature
        );
        emit X402ExactSettled(owner, witness.to, permit.permitted.token, permit.permitted.amount);
    }
}
