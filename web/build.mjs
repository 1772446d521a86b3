// Rebuilds what the dispatcher serves from npm packages pinned in package-lock.json:
//   cd web && npm ci && npm run build
// - dispatcher/api/static/talk.js: the local page (src/page.js) with Pipecat's client, one file.
// - dispatcher/api/static/dashboard.{js,css}: the deployment at a glance (src/dashboard.{js,css}) with uPlot.
// - dispatcher/api/docs_assets/: Swagger UI's bundle and stylesheet, so /docs renders offline.
// The outputs are committed; tests/e2e checks that the pages they make reach no other host.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const web = dirname(fileURLToPath(import.meta.url));
const api = join(web, "..", "dispatcher", "api");  // the assets live beside the modules that serve them

const docs = join(api, "docs_assets");
mkdirSync(docs, { recursive: true });
for (const file of ["swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"]) {
  copyFileSync(join(web, "node_modules", "swagger-ui-dist", file), join(docs, file));
}

await build({
  entryPoints: [join(web, "src", "page.js")],
  outfile: join(api, "static", "talk.js"),
  bundle: true,
  minify: true,
  format: "iife",
  target: "es2022",
  legalComments: "eof",
  banner: { js: "// Built by `npm run build` in web/ from web/src/page.js and the npm packages pinned there. Do not edit." },
  logLevel: "warning",
});

// uPlot (about 50 KB minified, against Chart.js's 200): the four line charts need nothing more.
for (const [entry, out] of [["dashboard.js", "dashboard.js"], ["dashboard.css", "dashboard.css"]]) {
  await build({
    entryPoints: [join(web, "src", entry)],
    outfile: join(api, "static", out),
    bundle: true,
    minify: true,
    format: entry.endsWith(".js") ? "iife" : undefined,
    target: "es2022",
    legalComments: "eof",
    banner: { [entry.endsWith(".js") ? "js" : "css"]: `/* Built by \`npm run build\` in web/ from web/src/${entry} and uPlot. Do not edit. */` },
    logLevel: "warning",
  });
}
