/**
 * The caches compared by the write, miss and mixed rows, each set up as its README recommends
 * for a memory tier in front of Redis, all on the same redis-server:
 * - tiercache: MemoryTier + RedisTier + RedisInvalidationBus (the README's example);
 * - BentoCache: memory driver as L1, Redis driver (ioredis, auto-pipelining) as L2, Redis bus;
 * - cache-manager 7: Keyv over CacheableMemory, then Keyv over @keyv/redis;
 * - cacheable: Keyv over CacheableMemory as primary, KeyvRedis as secondary.
 * Each writes under its own key prefix; `l1Entries` bounds every memory tier alike.
 */
import KeyvRedis, { createKeyv } from "@keyv/redis"
import { MemoryTier, TieredCache } from "@tiercache/core"
import { RedisConnection, RedisInvalidationBus, RedisTier } from "@tiercache/redis"
import { BentoCache, bentostore } from "bentocache"
import { memoryDriver } from "bentocache/drivers/memory"
import { redisBusDriver, redisDriver } from "bentocache/drivers/redis"
import { createCache } from "cache-manager"
import { Cacheable, CacheableMemory } from "cacheable"
import { Context, Effect, Layer, type Scope } from "effect"
import { Keyv } from "keyv"

/** Where the bench's redis-server listens. */
export interface Server {
  readonly host: string
  readonly port: number
  readonly url: string
}

/** The four caches, built for one group of rows. */
export interface Contenders {
  readonly tiercache: TieredCache.TieredCache.Service
  readonly bento: BentoCache<{ cache: ReturnType<typeof bentostore> }>
  readonly manager: ReturnType<typeof createCache>
  readonly cacheable: Cacheable
}

/**
 * Builds the four caches, each with a memory tier of `l1Entries`; closed with the scope. With
 * `bus` (default true) tiercache and BentoCache also get their Redis invalidation bus, as their
 * READMEs set them up for several instances; the read-only rows go without.
 */
export const contenders = (
  server: Server,
  l1Entries: number,
  namespace: string,
  { bus = true }: { readonly bus?: boolean } = {}
): Effect.Effect<Contenders, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const tiercache = yield* tiercacheOf(server, l1Entries, namespace, { bus })
    const connection = { host: server.host, port: server.port, enableAutoPipelining: true }
    const bento = new BentoCache({
      default: "cache",
      prefix: `bento:${namespace}`,
      stores: {
        cache: bus
          ? bentostore()
              .useL1Layer(memoryDriver({ maxItems: l1Entries }))
              .useL2Layer(redisDriver({ connection }))
              .useBus(redisBusDriver({ connection }))
          : bentostore()
              .useL1Layer(memoryDriver({ maxItems: l1Entries }))
              .useL2Layer(redisDriver({ connection }))
      }
    })
    const manager = createCache({
      stores: [
        new Keyv({ store: new CacheableMemory({ lruSize: l1Entries }) }),
        new Keyv({ store: createKeyv(server.url).store, namespace: `cm:${namespace}` })
      ]
    })
    const cacheable = new Cacheable({
      primary: new Keyv({ store: new CacheableMemory({ lruSize: l1Entries }) }),
      secondary: new KeyvRedis(server.url),
      namespace: `ca:${namespace}`
    })
    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        await bento.disconnectAll()
        await manager.disconnect()
        await cacheable.disconnect()
      })
    )
    return { tiercache, bento, manager, cacheable }
  })

/**
 * One tiercache as the README sets it up (MemoryTier of `l1Entries`, RedisTier under
 * `tc:<namespace>:`, with `bus` its RedisInvalidationBus), on its own connections.
 */
export const tiercacheOf = (
  server: Server,
  l1Entries: number,
  namespace: string,
  { bus = true }: { readonly bus?: boolean } = {}
): Effect.Effect<TieredCache.TieredCache.Service, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const tier = RedisTier.layer({ prefix: `tc:${namespace}:` })
    const context = yield* Layer.build(
      TieredCache.layer({ metricsInterval: "1 hour" }).pipe(
        Layer.provide(MemoryTier.layer({ maxEntries: l1Entries })),
        Layer.provide(
          bus
            ? Layer.merge(tier, RedisInvalidationBus.layer({ channel: `tc:${namespace}:invalidate` }))
            : tier
        ),
        Layer.provide(RedisConnection.layer({ url: server.url }))
      )
    )
    return Context.get(context, TieredCache.TieredCache)
  })

/** Fails unless every cache answers `expected` for `key` (each row reads real values). */
export const checkAnswers = (c: Contenders, key: string, expected: unknown): Effect.Effect<void> =>
  Effect.gen(function* () {
    const answers = [
      yield* Effect.map(c.tiercache.get(key), (o) => (o._tag === "Some" ? o.value : undefined)),
      yield* Effect.promise(() => c.bento.get({ key })),
      yield* Effect.promise(() => c.manager.get(key)),
      yield* Effect.promise(() => c.cacheable.get(key))
    ]
    const want = JSON.stringify(expected)
    const names = ["tiercache", "BentoCache", "cache-manager", "cacheable"]
    answers.forEach((answer, i) => {
      if (JSON.stringify(answer) !== want) throw new Error(`${names[i]} answered ${JSON.stringify(answer)}`)
    })
  }).pipe(Effect.orDie)
