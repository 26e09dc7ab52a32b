#!/usr/bin/env node
// Writes the token ids that an independent implementation, @lenml/tokenizers 3.7.2 (a port of transformers.js),
// gives for samples.json, so that HfTokenizerTest can check DJL's ids against them. Run once per tokenizer:
//
//   npm install --prefix /tmp/lenml @lenml/tokenizers@3.7.2
//   NODE_PATH=/tmp/lenml/node_modules node expected_ids.cjs <dir with tokenizer.json> <tokenizer_config.json> <out.json>
//
// (the tokenizer.json files are the ones the Maven build downloads into target/test-tokenizers/<model>/).
// Samples with "repeat" are long texts: only their token count and a SHA-256 of the comma-joined ids are kept.
const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const { TokenizerLoader } = require("@lenml/tokenizers");

const [tokenizerDir, configFile, outFile] = process.argv.slice(2);
if (!outFile) {
  console.error("usage: node expected_ids.cjs <tokenizer dir> <tokenizer_config.json> <out.json>");
  process.exit(2);
}
const tokenizer = TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(fs.readFileSync(path.join(tokenizerDir, "tokenizer.json"), "utf8")),
  tokenizerConfig: JSON.parse(fs.readFileSync(configFile, "utf8")),
});
const samples = JSON.parse(fs.readFileSync(path.join(__dirname, "samples.json"), "utf8"));
const out = {};
for (const sample of samples) {
  const text = sample.text.repeat(sample.repeat || 1);
  const ids = tokenizer.encode(text, { add_special_tokens: false });
  if (sample.repeat) {
    const digest = crypto.createHash("sha256").update(ids.join(",")).digest("hex");
    out[sample.name] = { count: ids.length, sha256: digest };
  } else {
    out[sample.name] = { ids };
  }
}
// One sample per line keeps the file small and diffs readable.
const lines = Object.entries(out).map(([name, value]) => ` ${JSON.stringify(name)}: ${JSON.stringify(value)}`);
fs.writeFileSync(outFile, "{\n" + lines.join(",\n") + "\n}\n");
console.log(`${outFile}: ${Object.keys(out).length} samples`);
