/**
 * The tiercache demo: two service instances, each with its own in-memory L1, sharing an
 * in-memory L2 and an invalidation bus (no Redis needed). It shows L1 and L2 hits, a miss, a
 * stampede of 500 concurrent requests coalesced into one computation, cross-instance
 * invalidation, Schema-typed reads, and the statistics.
 *
 * Run: pnpm demo
 */
import { CacheStrategy, type TieredCache } from "@tiercache/core"
import { MultiInstance } from "@tiercache/testing"
import { Console, Effect, Option, Schema } from "effect"

const Product = Schema.Struct({
  id: Schema.Number,
  name: Schema.String,
  price: Schema.Number,
  updatedAt: Schema.DateFromString
})

let databaseQueries = 0
/** A slow "database" lookup. */
const loadProduct = (id: number) =>
  Effect.sync(() => {
    databaseQueries++
    return { id, name: `Product ${id}`, price: 10 * id, updatedAt: new Date("2026-01-01T00:00:00Z") }
  }).pipe(Effect.delay("50 millis"))

const program = Effect.gen(function* () {
  const { caches } = yield* MultiInstance.make(2, { cache: { defaultTtl: CacheStrategy.MediumTerm } })
  const [eu, us] = caches as [TieredCache.TieredCache.Service, TieredCache.TieredCache.Service]

  yield* Console.log("1. A miss computes once; the value lands in L1 and L2")
  const first = yield* eu.getOrComputeTyped("product:1", Product, loadProduct(1))
  yield* Console.log(`   eu got ${first.name} (${first.price}), database queries: ${databaseQueries}`)

  yield* Console.log("2. The same key again: an L1 hit, no query")
  yield* eu.getOrComputeTyped("product:1", Product, loadProduct(1))
  yield* Console.log(`   database queries: ${databaseQueries}`)

  yield* Console.log("3. The other instance: an L2 hit, promoted into its L1 with the remaining TTL")
  const fromL2 = yield* us.getTyped("product:1", Product)
  yield* Console.log(`   us got ${Option.map(fromL2, (p) => p.name).pipe(Option.getOrElse(() => "nothing"))}`)

  yield* Console.log("4. A stampede: 500 concurrent requests for a missing key")
  const before = databaseQueries
  const results = yield* Effect.all(
    Array.from({ length: 500 }, () => us.getOrComputeTyped("product:2", Product, loadProduct(2))),
    { concurrency: "unbounded" }
  )
  yield* Console.log(`   ${results.length} answers, ${databaseQueries - before} database query`)

  yield* Console.log("5. An update on one instance reaches the other's L1 over the bus")
  yield* eu.update(
    "product:2",
    { id: 2, name: "Product 2 (on sale)", price: 15, updatedAt: new Date() },
    {
      schema: Product,
      ttl: "10 minutes"
    }
  )
  yield* Effect.sleep("10 millis")
  const updated = yield* us.getTyped("product:2", Product)
  yield* Console.log(
    `   us now sees: ${Option.map(updated, (p) => p.name).pipe(Option.getOrElse(() => "nothing"))}`
  )

  yield* Console.log("6. An invalidation removes the key everywhere")
  yield* us.invalidate("product:1")
  yield* Effect.sleep("10 millis")
  yield* Console.log(`   eu has product:1: ${Option.isSome(yield* eu.get("product:1"))}`)

  yield* Console.log("\nStatistics")
  for (const [name, cache] of [
    ["eu", eu],
    ["us", us]
  ] as const) {
    const s = yield* cache.stats
    const b = yield* cache.invalidationStats
    yield* Console.log(
      `   ${name}: ${s.requests} requests = ${s.l1Hits} L1 hits + ${s.l2Hits} L2 hits + ${s.coalesced} coalesced + ${s.misses} misses; ` +
        `${s.computations} computations, ${s.promotions} promotions; bus: ${b.messagesSent} sent, ${b.messagesApplied} applied`
    )
  }
})

Effect.runPromise(Effect.scoped(program)).catch((error) => {
  console.error(error)
  process.exit(1)
})
