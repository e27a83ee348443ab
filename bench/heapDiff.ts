/**
 * What a heap grew by between two V8 heap snapshots (`v8.writeHeapSnapshot`): bytes by kind of
 * object (type and constructor name), per entry, and what holds each large array that only the
 * later snapshot has (a Map's table, an array's elements...), as a chain of retainers. Used by
 * `profile.mjs fill` (see PROFILE.md, eighth round).
 */
import { readFileSync } from "node:fs"

interface Snapshot {
  readonly snapshot: {
    readonly meta: {
      readonly node_fields: ReadonlyArray<string>
      readonly node_types: ReadonlyArray<ReadonlyArray<string> | string>
      readonly edge_fields: ReadonlyArray<string>
      readonly edge_types: ReadonlyArray<ReadonlyArray<string> | string>
    }
  }
  readonly nodes: ReadonlyArray<number>
  readonly edges: ReadonlyArray<number>
  readonly strings: ReadonlyArray<string>
}

/** Arrays at least this large get their retainers printed. */
const LARGE = 256 * 1024

interface Read {
  /** Bytes and count by kind of object. */
  readonly kinds: Map<string, { bytes: number; count: number }>
  /** The retainer chain of each large array, by chain (with how many arrays share it and their bytes). */
  readonly large: Map<string, { bytes: number; count: number }>
}

const read = (file: string): Read => {
  const s = JSON.parse(readFileSync(file, "utf8")) as Snapshot
  const meta = s.snapshot.meta
  const F = meta.node_fields.length
  const types = meta.node_types[0] as ReadonlyArray<string>
  const iType = meta.node_fields.indexOf("type")
  const iName = meta.node_fields.indexOf("name")
  const iSize = meta.node_fields.indexOf("self_size")
  const iEdges = meta.node_fields.indexOf("edge_count")
  const E = meta.edge_fields.length
  const edgeTypes = meta.edge_types[0] as ReadonlyArray<string>
  const iEType = meta.edge_fields.indexOf("type")
  const iEName = meta.edge_fields.indexOf("name_or_index")
  const iTo = meta.edge_fields.indexOf("to_node")
  const count = s.nodes.length / F
  const type = (n: number) => types[s.nodes[n * F + iType]!]!
  const name = (n: number) => s.strings[s.nodes[n * F + iName]!]!
  const kindOf = (n: number) => {
    const t = type(n)
    return t === "object" || t === "native" || t === "closure" ? `${t} ${name(n)}` : t
  }

  const kinds = new Map<string, { bytes: number; count: number }>()
  for (let n = 0; n < count; n++) {
    const k = kindOf(n)
    const at = kinds.get(k) ?? { bytes: 0, count: 0 }
    at.bytes += s.nodes[n * F + iSize]!
    at.count++
    kinds.set(k, at)
  }

  // The first strong retainer of every node, to walk up from the large arrays.
  const retainer = new Int32Array(count).fill(-1)
  const via: Array<string | number> = new Array(count)
  for (let n = 0, e = 0; n < count; n++) {
    const edges = s.nodes[n * F + iEdges]!
    for (let k = 0; k < edges; k++, e += E) {
      const t = edgeTypes[s.edges[e + iEType]!]!
      if (t === "weak") continue
      const to = s.edges[e + iTo]! / F
      if (retainer[to] !== -1) continue
      retainer[to] = n
      const label = s.edges[e + iEName]!
      via[to] = t === "element" || t === "hidden" ? label : s.strings[label]!
    }
  }
  const large = new Map<string, { bytes: number; count: number }>()
  for (let n = 0; n < count; n++) {
    const bytes = s.nodes[n * F + iSize]!
    if (type(n) !== "array" || bytes < LARGE) continue
    let chain = kindOf(n)
    for (let at = n, depth = 0; depth < 6 && retainer[at] !== -1; depth++) {
      const up = retainer[at]!
      chain += ` <- [${String(via[at]).slice(0, 30)}] ${kindOf(up).slice(0, 40)}`
      at = up
    }
    const entry = large.get(chain) ?? { bytes: 0, count: 0 }
    entry.bytes += bytes
    entry.count++
    large.set(chain, entry)
  }
  return { kinds, large }
}

/** Prints what grew between `beforeFile` and `afterFile`, in bytes per one of `per` entries. */
export const diffSnapshots = (beforeFile: string, afterFile: string, per: number, top = 15): void => {
  const before = read(beforeFile)
  const after = read(afterFile)
  const rows: Array<readonly [string, number, number]> = []
  let total = 0
  for (const [kind, a] of after.kinds) {
    const b = before.kinds.get(kind) ?? { bytes: 0, count: 0 }
    rows.push([kind, a.bytes - b.bytes, a.count - b.count])
    total += a.bytes - b.bytes
  }
  for (const [kind, b] of before.kinds) if (!after.kinds.has(kind)) rows.push([kind, -b.bytes, -b.count])
  rows.sort((x, y) => y[1] - x[1])
  console.log(`heap growth: ${(total / per).toFixed(1)} B per entry (${per} entries), by kind of object:`)
  for (const [kind, bytes, count] of rows.slice(0, top)) {
    console.log(
      `  ${(bytes / per).toFixed(1).padStart(8)} B  ${String(count).padStart(9)} objects  ${kind.slice(0, 70)}`
    )
  }
  console.log(`large arrays (>= ${LARGE / 1024} KiB) only the later snapshot has, by what holds them:`)
  for (const [chain, a] of after.large) {
    const b = before.large.get(chain) ?? { bytes: 0, count: 0 }
    if (a.bytes - b.bytes <= 0) continue
    console.log(`  ${((a.bytes - b.bytes) / per).toFixed(1).padStart(8)} B  ${chain}`)
  }
}
