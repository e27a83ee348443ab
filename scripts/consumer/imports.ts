/**
 * Typechecked by scripts/consumer-check.sh in a scratch app against the packed packages (tsc
 * --strict, moduleResolution nodenext and bundler): every package's root and a subpath of each,
 * and a unit test's set-up with the testing layers.
 */
import { type CacheOptions, CacheStrategy, MemoryTier, TieredCache } from "@tiercache/core"
import * as KeyValueStoreTier from "@tiercache/core/KeyValueStoreTier"
import * as Tier from "@tiercache/core/Tier"
import { RedisConnection, RedisTier } from "@tiercache/redis"
import * as RedisStreams from "@tiercache/redis/RedisStreams"
import { TestBus, TestStreams, TestTier } from "@tiercache/testing"
import * as ChaosTier from "@tiercache/testing/ChaosTier"
import { Effect, Layer, type Option, Schema } from "effect"

/** A cache of unit tests: an in-memory L2 and bus on the Effect Clock. */
export const TestCacheLive = Effect.map(TestBus.makeHub, (hub) =>
  TieredCache.layer({ defaultTtl: CacheStrategy.ShortTerm }).pipe(
    Layer.provide(MemoryTier.layer({ maxEntries: 100 })),
    Layer.provide(Layer.merge(TestTier.layer(), TestBus.layer(hub)))
  )
)

/** The options' types are CacheOptions', and TieredCache still names them. */
export const options: CacheOptions.Options = {
  defaultTtl: CacheStrategy.ShortTerm,
  timeouts: { soft: "1 second" } satisfies TieredCache.Timeouts
} satisfies TieredCache.Options

/** A typed read; the answer's type is `Option<{ readonly id: number }>`. */
export const read: Effect.Effect<
  Option.Option<{ readonly id: number }>,
  unknown,
  TieredCache.TieredCache
> = Effect.flatMap(TieredCache.TieredCache, (cache) =>
  cache.getTyped("k", Schema.Struct({ id: Schema.Number }))
)

/** The subpath modules are the same modules as the root's namespaces. */
export const layers: ReadonlyArray<unknown> = [
  KeyValueStoreTier.layer,
  Tier.L2,
  RedisTier.layer,
  RedisConnection.layerConfig,
  RedisStreams.layer,
  TestStreams.layer,
  ChaosTier.layer
]
