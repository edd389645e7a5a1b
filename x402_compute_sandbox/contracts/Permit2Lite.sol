// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice The slice of Permit2's SignatureTransfer interface that x402's exact proxy calls. Struct
///         layouts match Permit2's ABI, so calldata built for the real contract decodes here unchanged.
interface ISignatureTransferLite {
    struct TokenPermissions {
        address token;
        uint256 amount;
    }

    struct PermitTransferFrom {
        TokenPermissions permitted;
        uint256 nonce;
        uint256 deadline;
    }

    struct SignatureTransferDetails {
        address to;
        uint256 requestedAmount;
    }

    function permitWitnessTransferFrom(
        PermitTransferFrom calldata permit,
        SignatureTransferDetails calldata transferDetails,
        address owner,
        bytes32 witness,
        string calldata witnessTypeString,
        bytes calldata signature
    ) external;
}

/// @title Permit2Lite — the sandbox's stand-in for Uniswap Permit2 (SignatureTransfer witness path only).
/// @notice Written from scratch for the x402-compute sandbox; test-only, never deploy it anywhere real.
///         The sandbox copies this runtime to Permit2's canonical address through genesis state, so a
///         Permit2 signature made for a real network (domain {name: "Permit2", chainId, verifyingContract})
///         verifies here unchanged and x402's exact proxy can pull funds with it.
/// @dev Implemented: `permitWitnessTransferFrom`, the unordered nonce bitmap (`nonceBitmap`,
///      `invalidateUnorderedNonces`), `DOMAIN_SEPARATOR`. Not implemented: AllowanceTransfer (approve /
///      permit / transferFrom with stored allowances), batch transfers, plain `permitTransferFrom`
///      without a witness, `lockdown`, and EIP-1271 contract signatures (EOA signatures only, 65-byte or
///      EIP-2098 64-byte).
///      No immutables and no constructor state: the runtime must work when placed at an address with
///      empty storage, so the domain separator is computed from block.chainid and address(this) per call.
///      Reverts use strings named after Permit2's custom errors ("InvalidNonce", "SignatureExpired", …):
///      eth-tester surfaces strings readably, and x402's settle-error mapping matches by substring.
contract Permit2Lite is ISignatureTransferLite {
    bytes32 public constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,uint256 chainId,address verifyingContract)");
    bytes32 private constant NAME_HASH = keccak256("Permit2");
    bytes32 public constant TOKEN_PERMISSIONS_TYPEHASH = keccak256("TokenPermissions(address token,uint256 amount)");
    /// The caller appends its witness type string (e.g. "Witness witness)TokenPermissions(...)Witness(...)"),
    /// which completes the struct's member list and adds the referenced type definitions.
    string public constant PERMIT_WITNESS_TRANSFER_FROM_TYPEHASH_STUB =
        "PermitWitnessTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline,";

    /// owner => word position => bitmap; bit `nonce & 255` of word `nonce >> 8` set = nonce used.
    /// Unordered so a wallet can hold many outstanding permits (x402 clients pick random 256-bit nonces).
    mapping(address => mapping(uint256 => uint256)) public nonceBitmap;

    event UnorderedNonceInvalidation(address indexed owner, uint256 word, uint256 mask);

    function DOMAIN_SEPARATOR() public view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, block.chainid, address(this)));
    }

    /// @notice Transfers `transferDetails.requestedAmount` of `permit.permitted.token` from `owner` to
    ///         `transferDetails.to`, authorised by `owner`'s EIP-712 signature over the permit, the caller
    ///         as spender, and the caller-supplied witness. Uses `owner`'s ERC-20 allowance to this contract.
    function permitWitnessTransferFrom(
        PermitTransferFrom calldata permit,
        SignatureTransferDetails calldata transferDetails,
        address owner,
        bytes32 witness,
        string calldata witnessTypeString,
        bytes calldata signature
    ) external {
        if (block.timestamp > permit.deadline) revert("SignatureExpired");
        if (transferDetails.requestedAmount > permit.permitted.amount) revert("InvalidAmount");

        bytes32 typeHash = keccak256(abi.encodePacked(PERMIT_WITNESS_TRANSFER_FROM_TYPEHASH_STUB, witnessTypeString));
        bytes32 permittedHash =
            keccak256(abi.encode(TOKEN_PERMISSIONS_TYPEHASH, permit.permitted.token, permit.permitted.amount));
        // The spender is never taken from input: hashing msg.sender means only the contract the owner
        // named (x402's proxy) can redeem the signature.
        bytes32 structHash =
            keccak256(abi.encode(typeHash, permittedHash, msg.sender, permit.nonce, permit.deadline, witness));
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", DOMAIN_SEPARATOR(), structHash));

        // Effects before the external token call: the nonce is spent even if a token called back.
        _useUnorderedNonce(owner, permit.nonce);
        _verifySigner(signature, digest, owner);
        _transferFrom(permit.permitted.token, owner, transferDetails.to, transferDetails.requestedAmount);
    }

    /// @notice Lets an owner cancel outstanding permits by setting bits of one bitmap word.
    function invalidateUnorderedNonces(uint256 wordPos, uint256 mask) external {
        nonceBitmap[msg.sender][wordPos] |= mask;
        emit UnorderedNonceInvalidation(msg.sender, wordPos, mask);
    }

    function _useUnorderedNonce(address owner, uint256 nonce) internal {
        uint256 wordPos = nonce >> 8;
        uint256 bit = uint256(1) << (nonce & 0xff);
        uint256 word = nonceBitmap[owner][wordPos];
        if (word & bit != 0) revert("InvalidNonce");
        nonceBitmap[owner][wordPos] = word | bit;
    }

    function _verifySigner(bytes calldata signature, bytes32 digest, address owner) internal pure {
        bytes32 r;
        bytes32 s;
        uint8 v;
        if (signature.length == 65) {
            r = bytes32(signature[0:32]);
            s = bytes32(signature[32:64]);
            v = uint8(signature[64]);
        } else if (signature.length == 64) {
            // EIP-2098 compact form: the top bit of the second word is the y-parity.
            r = bytes32(signature[0:32]);
            bytes32 vs = bytes32(signature[32:64]);
            s = vs & bytes32(type(uint256).max >> 1);
            v = uint8(uint256(vs) >> 255) + 27;
        } else {
            revert("InvalidSignatureLength");
        }
        // Like Permit2, high-s signatures are not refused here: the nonce bitmap already makes a
        // malleated copy useless, and refusing them would diverge from what production accepts.
        address signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert("InvalidSignature");
        if (signer != owner) revert("InvalidSigner");
    }

    /// ERC-20 transferFrom that accepts tokens returning nothing, refuses ones returning false, and
    /// passes the token's own revert reason through (e.g. "exceeds allowance") so a facilitator can
    /// tell a missing Permit2 approval from a bad signature.
    function _transferFrom(address token, address from, address to, uint256 amount) internal {
        // A call to an address without code "succeeds"; never report a transfer that did not happen.
        if (token.code.length == 0) revert("TransferFromFailed");
        (bool ok, bytes memory ret) = token.call(abi.encodeWithSelector(0x23b872dd, from, to, amount));
        if (!ok) {
            assembly {
                revert(add(ret, 0x20), mload(ret))
            }
        }
        if (ret.length != 0 && !abi.decode(ret, (bool))) revert("TransferFromFailed");
    }
}
