// Every export of a public module (packages/*/src/*.ts, not internal/ or index.ts) carries
// `@since` and `@category` in its JSDoc: the API reference (pnpm docs, @effect/docgen) groups
// exports by category, and docgen itself only insists on @since.
// Usage: node scripts/jsdoc.mjs   exit 1 and name every export that lacks either tag
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import ts from "typescript"

const root = join(import.meta.dirname, "..", "packages")
const problems = []
for (const pkg of readdirSync(root)) {
  const dir = join(root, pkg, "src")
  for (const name of readdirSync(dir)) {
    if (!name.endsWith(".ts") || name === "index.ts") continue
    const file = join(dir, name)
    const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true)
    for (const statement of source.statements) {
      // `export { X } from "./internal/x.js"`: docgen reads each name's JSDoc inside the braces.
      if (
        ts.isExportDeclaration(statement) &&
        statement.exportClause &&
        ts.isNamedExports(statement.exportClause)
      ) {
        for (const element of statement.exportClause.elements) {
          const tags = new Set(ts.getJSDocTags(element).map((tag) => tag.tagName.text))
          const docs = ts.getJSDocCommentsAndTags(element).length > 0
          for (const tag of ["since", "category"]) {
            if (!docs || !tags.has(tag)) {
              const line = source.getLineAndCharacterOfPosition(element.getStart(source)).line + 1
              problems.push(`packages/${pkg}/src/${name}:${line} ${element.name.getText(source)}: no @${tag}`)
            }
          }
        }
        continue
      }
      const exported = ts.canHaveModifiers(statement)
        ? ts.getModifiers(statement)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)
        : false
      if (!exported) continue
      const names = ts.isVariableStatement(statement)
        ? statement.declarationList.declarations.map((d) => d.name.getText(source))
        : [statement.name?.getText(source) ?? "(anonymous)"]
      const tags = new Set(ts.getJSDocTags(statement).map((tag) => tag.tagName.text))
      for (const tag of ["since", "category"]) {
        if (!tags.has(tag)) {
          const line = source.getLineAndCharacterOfPosition(statement.getStart(source)).line + 1
          problems.push(`packages/${pkg}/src/${name}:${line} ${names.join(", ")}: no @${tag}`)
        }
      }
    }
  }
}
for (const problem of problems) console.error(problem)
process.exit(problems.length === 0 ? 0 : 1)
