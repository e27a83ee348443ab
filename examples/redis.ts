/**
 * The README's example: a cache over Redis with cross-instance invalidation. Typechecked with
 * the workspace; run it against a Redis of yours with REDIS_URL=redis://... tsx examples/redis.ts
 */
import { MemoryTier, TieredCache } from "@tiercache/core"
import { RedisConnection, RedisInvalidationBus, RedisTier } from "@tiercache/redis"
import { Config, Effect, Layer, Schema } from "effect"

const User = Schema.Struct({ id: Schema.Number, name: Schema.String, since: Schema.DateFromString })
const loadUser = (id: number) => Effect.succeed({ id, name: `user ${id}`, since: new Date() })

// Every key (and the bus's namespace) starts with keyPrefix: clear and invalidatePattern never
// reach keys outside it. The default is "tiercache:"; one prefix per application.
const RedisLive = RedisConnection.layerConfig({
  url: Config.redacted("REDIS_URL"),
  keyPrefix: Config.succeed("myapp:cache:")
})

const CacheLive = TieredCache.layer({ defaultTtl: "5 minutes" }).pipe(
  Layer.provide(MemoryTier.layer({ maxEntries: 50_000 })),
  Layer.provide(Layer.merge(RedisTier.layer(), RedisInvalidationBus.layer())),
  Layer.provide(RedisLive)
)

const program = Effect.gen(function* () {
  const cache = yield* TieredCache.TieredCache
  // One computation per key per instance however many callers miss at once; typed on the way out.
  const user = yield* cache.getOrComputeTyped("user:1", User, loadUser(1), { ttl: "10 minutes" })
  yield* cache.invalidate("user:1") // every tier, and every instance's L1 over the bus
  return user
})

Effect.runPromise(program.pipe(Effect.provide(CacheLive))).then(
  (user) => console.log("cached and invalidated", user),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
