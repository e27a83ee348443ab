/**
 * The demo's product reads and writes through the cache, each read told where its answer
 * came from.
 *
 * Where an answer came from is found without touching the cache's internals: before the read,
 * the handler looks at the L1 entry (and, when L1 has none, the L2 entry) directly through the
 * tier services; the computation passed to `getOrComputeTyped` marks that it ran. A request
 * whose own computation ran answers `computed`; one that found a stale entry answers `stale`
 * (stale-while-revalidate: the refresh runs in the background); otherwise the tier that held a
 * fresh entry (`L1`, `L2`), or `coalesced` when no tier had it and another request's
 * computation answered. Under concurrent writes to the same key the peek and the read can see
 * different states, so the label is a best effort there; the cache's own counters (`/stats`,
 * `/metrics`) are exact.
 */
import { Entry, Tier, TieredCache } from "@tiercache/core"
import { Clock, Context, type Duration, Effect, Layer, Option } from "effect"
import { Catalogue, categoryOf, categoryTag, Product, type ProductPatch, productKey } from "./catalogue.js"

/** Where an answer came from. */
export type Source = "L1" | "L2" | "computed" | "stale" | "coalesced"

/** A read's answer: the product, where it came from, and how long the read took. */
export interface Answer {
  readonly product: Product
  readonly source: Source
  readonly ms: number
}

/** What a stampede did. */
export interface StampedeReport {
  readonly requests: number
  readonly upstreamCalls: number
  readonly sources: Readonly<Record<Source, number>>
  readonly ms: number
}

/** How long products stay fresh, and their grace window (served stale while refreshed). */
export interface Lifetimes {
  readonly ttl: Duration.Duration
  readonly grace: Duration.Duration
}

const peek = (tier: Tier.Tier.Service, key: string) =>
  tier.get(key).pipe(Effect.orElseSucceed(() => Option.none<Entry.Entry>()))

/** Classifies an entry found by a peek. */
const usable = (entry: Option.Option<Entry.Entry>, now: number): "fresh" | "stale" | "none" =>
  Option.match(entry, {
    onNone: () => "none",
    onSome: (e) => (Entry.isFresh(e, now) ? "fresh" : Entry.isStale(e, now) ? "stale" : "none")
  })

/** The product service of the demo. */
export class Products extends Context.Tag("@tiercache/examples/Products")<
  Products,
  Effect.Effect.Success<ReturnType<typeof make>>
>() {
  /** Built over the cache, its L1 and L2 tiers, and the catalogue. */
  static readonly layer = (lifetimes: Lifetimes) => Layer.effect(Products, make(lifetimes))
}

const make = (lifetimes: Lifetimes) =>
  Effect.gen(function* () {
    const cache = yield* TieredCache.TieredCache
    const l1 = yield* Tier.L1
    const l2 = yield* Tier.L2
    const catalogue = yield* Catalogue
    const writeOptions = (id: number) => ({
      ttl: lifetimes.ttl,
      grace: lifetimes.grace,
      tags: [categoryTag(categoryOf(id))]
    })

    /** Where a read of `key` is about to be answered from, judged by the tiers' entries. */
    const before = (key: string) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const inL1 = usable(yield* peek(l1, key), now)
        if (inL1 === "fresh") return "L1" as const
        if (inL1 === "stale") return "stale" as const
        const inL2 = usable(yield* peek(l2, key), now)
        return inL2 === "fresh" ? ("L2" as const) : inL2 === "stale" ? ("stale" as const) : ("none" as const)
      })

    const read = (id: number) =>
      Effect.gen(function* () {
        const started = yield* Clock.currentTimeNanos
        const key = productKey(id)
        const seen = yield* before(key)
        let ranHere = false
        const product = yield* cache.getOrComputeTyped(
          key,
          Product,
          Effect.suspend(() => {
            ranHere = true
            return catalogue.load(id)
          }),
          writeOptions(id)
        )
        const source: Source =
          seen === "stale" ? "stale" : ranHere ? "computed" : seen === "none" ? "coalesced" : seen
        const ms = Number((yield* Clock.currentTimeNanos) - started) / 1e6
        return { product, source, ms } satisfies Answer
      })

    const update = (id: number, patch: typeof ProductPatch.Type) =>
      Effect.gen(function* () {
        const changed = yield* catalogue.change(id, patch)
        if (Option.isSome(changed)) {
          yield* cache.update(productKey(id), changed.value, { schema: Product, ...writeOptions(id) })
        }
        return changed
      })

    const stampede = (id: number, n: number) =>
      Effect.gen(function* () {
        const started = yield* Clock.currentTimeNanos
        yield* cache.invalidate(productKey(id))
        const callsBefore = yield* catalogue.calls
        const answers = yield* Effect.forEach(Array.from({ length: n }), () => read(id), {
          concurrency: "unbounded"
        })
        const sources: Record<Source, number> = { L1: 0, L2: 0, computed: 0, stale: 0, coalesced: 0 }
        for (const answer of answers) sources[answer.source]++
        const ms = Number((yield* Clock.currentTimeNanos) - started) / 1e6
        return {
          requests: n,
          upstreamCalls: (yield* catalogue.calls) - callsBefore,
          sources,
          ms
        } satisfies StampedeReport
      })

    return { read, update, stampede, lifetimes, upstreamCalls: catalogue.calls } as const
  })
