// Regenerates the sandbox's contract artifacts offline: npm's solc ships the wasm compiler in its tarball.
// Usage: (cd x402_compute_sandbox/contracts && npm install && node compile.mjs)
// Writes TestToken.json, Permit2Lite.json and X402ExactPermit2Proxy.json (one per contract below).
// evmVersion is pinned to cancun because solc >= 0.8.31 defaults to osaka, which py-evm lacks.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const solc = createRequire(import.meta.url)("solc");

// [source file, contract name]: every contract whose runtime the sandbox places at an address.
const CONTRACTS = [
  ["TestToken.sol", "TestToken"],
  ["Permit2Lite.sol", "Permit2Lite"],
  ["X402ExactPermit2Proxy.sol", "X402ExactPermit2Proxy"],
];

// All sources go into one standard-JSON input, so relative imports ("./Permit2Lite.sol") resolve
// without an import callback.
const sources = {};
for (const [file] of CONTRACTS) sources[file] = { content: readFileSync(join(here, file), "utf8") };

const input = {
  language: "Solidity",
  sources,
  settings: {
    evmVersion: "cancun",
    optimizer: { enabled: true, runs: 200 },
    // No metadata hash: keeps the artifacts byte-stable across machines and paths.
    metadata: { bytecodeHash: "none" },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length) process.exit(1);

for (const [file, name] of CONTRACTS) {
  const c = output.contracts[file][name];
  const artifact = {
    contractName: name,
    compiler: `solc ${solc.version()}`,
    evmVersion: input.settings.evmVersion,
    abi: c.abi,
    bytecode: "0x" + c.evm.bytecode.object,
    deployedBytecode: "0x" + c.evm.deployedBytecode.object,
  };
  writeFileSync(join(here, `${name}.json`), JSON.stringify(artifact, null, 2) + "\n");
  console.log(`${name}.json written (${c.evm.deployedBytecode.object.length / 2} bytes runtime, ${solc.version()})`);
}
