// Runs STruC++'s library compile() API (the CLI does not write the debugger
// tables) on one Structured Text file and writes what scripts/build-plc-program
// compiles: every generated .cpp, generated.hpp, generated_debug.cpp and
// debug-map.json. Usage: node strucpp_compile.mjs STRUCPP_DIR FILE.st OUT_DIR
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [strucppDir, input, outDir] = process.argv.slice(2);
if (!strucppDir || !input || !outDir) {
    console.error("usage: strucpp_compile.mjs STRUCPP_DIR FILE.st OUT_DIR");
    process.exit(2);
}
const api = await import(pathToFileURL(join(resolve(strucppDir), "dist/node/index.js")).href);
const libsDir = join(resolve(strucppDir), "libs");
const source = readFileSync(input, "utf-8");
const result = api.compile(source, {
    fileName: basename(input),
    headerFileName: "generated.hpp",
    libraries: api.discoverStlibs(libsDir),
});
for (const w of result.warnings ?? []) {
    console.error(`${input}:${w.line}:${w.column}: warning: ${w.message}`);
}
if (!result.success) {
    for (const e of result.errors) {
        console.error(`${input}:${e.line}:${e.column}: error: ${e.message}`);
    }
    process.exit(1);
}
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, "generated.hpp"), result.headerCode);
for (const f of result.cppFiles) {
    writeFileSync(join(outDir, f.name), f.content);
}
if (result.debugTableCpp !== undefined) {
    writeFileSync(join(outDir, "generated_debug.cpp"), result.debugTableCpp);
}
if (result.debugMap !== undefined) {
    writeFileSync(join(outDir, "debug-map.json"), JSON.stringify(result.debugMap, null, 2) + "\n");
}
