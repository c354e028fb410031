// `npm run docs` (second step): docs/api.md, the API reference that ships in the package, from TypeDoc's
// JSON model of the entry points. One line per export, with its summary and a link to its declaration
// in src/ (shipped, so the link resolves in node_modules and on GitHub alike). The HTML reference
// (docs/api/, not shipped) has the full comments of every member.
//   node scripts/api-reference.mjs <typedoc.json> <out.md>
import { readFileSync, writeFileSync } from "node:fs";

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error("usage: node scripts/api-reference.mjs <typedoc.json> <out.md>");
  process.exit(2);
}
const project = JSON.parse(readFileSync(input, "utf8"));

/** TypeDoc's module names (paths under src/ without index) to the package's import specifiers. */
const ENTRY = {
  index: "matrixrtc-membership",
  testing: "matrixrtc-membership/testing",
  "testing/synapse": "matrixrtc-membership/testing/synapse",
  "widget-host": "matrixrtc-membership/widget-host",
  node: "matrixrtc-membership/node",
};
const ORDER = Object.keys(ENTRY);
const KIND = {
  128: "Classes",
  64: "Functions",
  32: "Constants",
  256: "Interfaces",
  2097152: "Types",
  4194304: "Re-exports",
};
const KIND_ORDER = [128, 64, 32, 256, 2097152, 4194304];

const byId = new Map();
const index = (node) => {
  byId.set(node.id, node);
  for (const child of node.children ?? []) index(child);
};
index(project);

/** The first paragraph of a comment, on one line. */
function summary(comment) {
  if (!comment?.summary) return "";
  const text = comment.summary.map((part) => part.text).join("");
  return text
    .split(/\n\s*\n/)[0]
    .replace(/\s*\n\s*/g, " ")
    .trim();
}

function commentOf(decl) {
  return decl.comment ?? decl.signatures?.[0]?.comment ?? decl.getSignature?.comment;
}

function paramList(signature) {
  return (signature.parameters ?? [])
    .map((p) => `${p.flags?.isRest ? "..." : ""}${p.name}${p.flags?.isOptional || p.defaultValue ? "?" : ""}`)
    .join(", ");
}

function source(decl) {
  const s = decl.sources?.[0];
  // TypeDoc names the file relative to the entry points' common folder (src/) or, depending on how it
  // finds the project's root, to the repository: either way the link is into the shipped src/.
  return s ? `../src/${s.fileName.replace(/^src\//, "")}#L${s.line}` : undefined;
}

const lines = [
  "# API reference",
  "",
  "Every export of the package's entry points, one line each: what it is for, and where it is declared",
  "(`src/`, shipped in the package; your editor shows the same documentation from the declarations in",
  "`dist/`). Generated from the doc comments by `npm run docs`, which also writes the full HTML reference",
  "to `docs/api/` in a clone.",
  "",
];
const modules = [...(project.children ?? [])].sort((a, b) => ORDER.indexOf(a.name) - ORDER.indexOf(b.name));
lines.push(
  ...modules.map((m) => `- [\`${ENTRY[m.name] ?? m.name}\`](#${anchor(ENTRY[m.name] ?? m.name)})`),
  "",
);
for (const mod of modules) {
  const name = ENTRY[mod.name] ?? mod.name;
  lines.push(`## \`${name}\``, "");
  const moduleSummary = summary(mod.comment);
  if (moduleSummary) lines.push(moduleSummary, "");
  for (const kind of KIND_ORDER) {
    const decls = (mod.children ?? [])
      .filter((d) => d.kind === kind)
      .sort((a, b) => a.name.localeCompare(b.name));
    if (decls.length === 0) continue;
    lines.push(`### ${KIND[kind]}`, "");
    for (const decl of decls) {
      const label =
        kind === 64
          ? `${decl.name}(${paramList(decl.signatures[0])})`
          : kind === 128
            ? `class ${decl.name}`
            : decl.name;
      if (kind === 4194304) {
        const target = byId.get(decl.target);
        lines.push(
          `- \`${decl.name}\`: the same as \`${target?.name ?? decl.name}\`${target ? ` (${summary(commentOf(target))})` : ""}`,
        );
        continue;
      }
      const where = source(decl);
      const text = summary(commentOf(decl));
      lines.push(`- ${where ? `[\`${label}\`](${where})` : `\`${label}\``}${text ? `: ${text}` : ""}`);
    }
    lines.push("");
  }
}

function anchor(title) {
  return title
    .toLowerCase()
    .replace(/[^a-z0-9 -]/g, "")
    .replace(/ /g, "-");
}

writeFileSync(output, lines.join("\n").replace(/\n+$/, "\n"));
console.log(`${output}: ${lines.length} lines`);
