/**
 * The demo's cache, wired as the README tells users to wire theirs: `TieredCache.layer` over
 * `MemoryTier` (L1) and `KeyValueStoreTier` on the file system (L2, persistent, no Redis), or,
 * with `REDIS_URL` set, over `RedisTier` with `RedisInvalidationBus` so that several
 * processes share L2 and keep their L1s coherent.
 */

import type { PlatformError } from "@effect/platform/Error"
import { NodeKeyValueStore } from "@effect/platform-node"
import { type CacheError, MemoryTier, type Tier, TieredCache } from "@tiercache/core"
import * as KeyValueStoreTier from "@tiercache/core/KeyValueStoreTier"
import { RedisConnection, RedisInvalidationBus, RedisTier } from "@tiercache/redis"
import { Layer, type Redacted } from "effect"

/** Where L2 lives. */
export type Storage =
  | { readonly _tag: "FileSystem"; readonly directory: string }
  | { readonly _tag: "Redis"; readonly url: Redacted.Redacted }

/** The options every cache of the demo shares. */
const cacheOptions = { name: "products", defaultTtl: "5 minutes" } as const

/**
 * The cache, with its L1 and L2 tiers left in the context (the demo peeks at them to say
 * where an answer came from; an application only needs `TieredCache`).
 */
export const layer = (
  storage: Storage
): Layer.Layer<
  TieredCache.TieredCache | Tier.L1 | Tier.L2,
  TieredCache.LayerError | CacheError.TierError | PlatformError | RedisConnection.RedisConnectionError
> => {
  const L1Live = MemoryTier.layer({ maxEntries: 10_000 })
  switch (storage._tag) {
    case "FileSystem": {
      const L2Live = KeyValueStoreTier.layer({ name: "file" }).pipe(
        Layer.provide(NodeKeyValueStore.layerFileSystem(storage.directory))
      )
      return TieredCache.layer(cacheOptions).pipe(Layer.provideMerge(Layer.merge(L1Live, L2Live)))
    }
    case "Redis": {
      const RedisLive = RedisConnection.layer({ url: storage.url })
      const L2Live = Layer.merge(RedisTier.layer(), RedisInvalidationBus.layer()).pipe(
        Layer.provide(RedisLive)
      )
      return TieredCache.layer(cacheOptions).pipe(Layer.provideMerge(Layer.merge(L1Live, L2Live)))
    }
  }
}
