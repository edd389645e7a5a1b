// Regenerates TestToken.json offline: npm's solc ships the wasm compiler inside its tarball.
// Usage: (cd x402_compute_sandbox/contracts && npm install && node compile.mjs)
// evmVersion is pinned to cancun because solc >= 0.8.31 defaults to osaka, which py-evm lacks.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const solc = createRequire(import.meta.url)("solc");

const input = {
  language: "Solidity",
  sources: { "TestToken.sol": { content: readFileSync(join(here, "TestToken.sol"), "utf8") } },
  settings: {
    evmVersion: "cancun",
    optimizer: { enabled: true, runs: 200 },
    // No metadata hash: keeps the artifact byte-stable across machines and paths.
    metadata: { bytecodeHash: "none" },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length) process.exit(1);

const c = output.contracts["TestToken.sol"].TestToken;
const artifact = {
  contractName: "TestToken",
  compiler: `solc ${solc.version()}`,
  evmVersion: input.settings.evmVersion,
  abi: c.abi,
  bytecode: "0x" + c.evm.bytecode.object,
  deployedBytecode: "0x" + c.evm.deployedBytecode.object,
};
writeFileSync(join(here, "TestToken.json"), JSON.stringify(artifact, null, 2) + "\n");
console.log(`TestToken.json written (${c.evm.deployedBytecode.object.length / 2} bytes runtime, ${solc.version()})`);
