// Every Terraform file (.tf, .tfvars, and .hcl: the environments' partial backend
// configurations) parses with HashiCorp's HCL parser and is formatted as `terraform fmt` would
// leave it (no terraform binary is obtainable here; these are its libraries, built to
// WebAssembly: npm @cdktf/hcl2json and @cdktf/hcl-tools, installed by scripts/servers.sh).
//
//   node scripts/check-hcl.js DIR...
// Writes each file's JSON form next to nothing (the structural check reads the .tf files with
// python-hcl2); exits 1 naming every file that does not parse, with the parser's position, or
// is not formatted, with the first line that differs.
"use strict";

const fs = require("fs");
const path = require("path");
const modules = path.join(__dirname, "..", "target", "servers", "npm", "node_modules");
const { parse } = require(path.join(modules, "@cdktf", "hcl2json"));
const { format } = require(path.join(modules, "@cdktf", "hcl-tools"));

function tfFiles(dir) {
  const found = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== ".terraform") found.push(...tfFiles(full));
    } else if ([".tf", ".tfvars", ".hcl"].some((ext) => entry.name.endsWith(ext))) {
      found.push(full);
    }
  }
  return found.sort();
}

async function main() {
  const dirs = process.argv.slice(2);
  if (dirs.length === 0) {
    console.error("usage: node scripts/check-hcl.js DIR...");
    process.exit(2);
  }
  const problems = [];
  let count = 0;
  for (const dir of dirs) {
    const files = tfFiles(dir);
    if (files.length === 0) problems.push(`${dir}: no .tf file`);
    for (const file of files) {
      count += 1;
      const text = fs.readFileSync(file, "utf8");
      try {
        await parse(file, text);
      } catch (e) {
        problems.push(`${file}: does not parse: ${String(e.message || e).trim()}`);
        continue;
      }
      const formatted = await format(text);
      if (formatted !== text) {
        const have = text.split("\n");
        const want = formatted.split("\n");
        let line = 0;
        while (line < have.length && have[line] === want[line]) line += 1;
        problems.push(
          `${file}:${line + 1}: not formatted (terraform fmt): have ${JSON.stringify(have[line] ?? "")}, ` +
            `want ${JSON.stringify(want[line] ?? "")}`,
        );
      }
    }
  }
  for (const p of problems) console.error(p);
  if (problems.length > 0) process.exit(1);
  console.log(`${count} Terraform files parse and are formatted`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
