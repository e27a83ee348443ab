/**
 * The README's quick start: an in-process L1 in front of a persistent L2 on the file system
 * (no Redis). Run it twice: the second process answers from the files the first one wrote.
 * Run: tsx examples/quickstart.ts (CI runs it compiled, with plain node, against the packed packages)
 */
import { KeyValueStore } from "@effect/platform"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { MemoryTier, TieredCache } from "@tiercache/core"
import * as KeyValueStoreTier from "@tiercache/core/KeyValueStoreTier"
import { Console, Effect, Layer } from "effect"

const CacheLive = TieredCache.layer({ defaultTtl: "1 hour" }).pipe(
  Layer.provide(MemoryTier.layer({ maxEntries: 10_000 })),
  Layer.provide(KeyValueStoreTier.layer()),
  Layer.provide(KeyValueStore.layerFileSystem(".cache/tiercache")),
  Layer.provide(NodeContext.layer)
)

let computed = 0
/** Stands for a slow lookup (a database, an HTTP API). */
const loadPrice = (id: number) =>
  Effect.sync(() => {
    computed++
    return { id, cents: 4299 }
  })

const program = Effect.gen(function* () {
  const cache = yield* TieredCache.TieredCache
  const price = yield* cache.getOrCompute("price:42", loadPrice(42))
  const again = yield* cache.getOrCompute("price:42", loadPrice(42)) // an L1 hit
  yield* Console.log(`price ${JSON.stringify(price)}, again ${JSON.stringify(again)}, computed ${computed}x`)
})

NodeRuntime.runMain(program.pipe(Effect.provide(CacheLive)))
