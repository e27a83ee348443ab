/**
 * An in-memory tier whose expiry follows the Effect Clock (so `TestClock` drives it), with
 * switches to make operations fail, for users' unit tests and ours. It is the L2 of tests
 * that need no Redis. It holds each entry written as RedisTier does, in its wire form
 * (`Entry.serialize`), and reads a copy back: another instance reads `-0` as `0`, sees no
 * property whose value is `undefined` and no symbol-keyed or named array property, and a value
 * changed after its write (or after a read) is not changed in the tier.
 *
 * @since 0.1.0
 */
import { CacheError, Entry, Glob, Tier } from "@tiercache/core"
import { Effect, Layer, Option } from "effect"
import { nameOf } from "./internal/options.js"

/**
 * The operations a test tier can be told to fail.
 *
 * @category models
 * @since 0.1.0
 */
export type Operation = "get" | "getMany" | "set" | "setMany" | "remove" | "removeMatching" | "clear"

/**
 * A test tier: a Tier plus a look inside and failure switches.
 *
 * @category models
 * @since 0.1.0
 */
export interface TestTier extends Tier.Tier.Service {
  /** The stored entries (gone ones excluded), keyed as written. */
  readonly snapshot: Effect.Effect<ReadonlyMap<string, Entry.Entry>>
  /**
   * Writes an entry directly, bypassing any cache (to plant bad or foreign data): held as given,
   * not in its wire form, so that it can hold what no serializing tier could.
   */
  readonly plant: (key: string, entry: Entry.Entry) => Effect.Effect<void>
  /** Makes the given operations (or all) fail with a TierError until told otherwise. */
  readonly failOn: (operations: ReadonlyArray<Operation> | "all" | "none") => Effect.Effect<void>
  /** How many times each operation was called. */
  readonly calls: Effect.Effect<Readonly<Record<Operation, number>>>
}

/**
 * Options of a test tier. Only an absent (`undefined`) option takes its default: `null` from
 * plain JavaScript, or a value of the wrong type, is a defect (a mistake in the test: the test
 * tier promises no failure) carrying a `CacheConfigError` naming it.
 *
 * @category options
 * @since 0.1.0
 */
export interface Options {
  /** The tier's name (default `test`). */
  readonly name?: string | undefined
}

/**
 * Builds a test tier.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (options: Options = {}): Effect.Effect<TestTier> =>
  Effect.gen(function* () {
    const name = yield* nameOf(options, "test")
    const clock = yield* Effect.clock
    /** The wire form of what was written (as RedisTier holds it), or an entry as planted. */
    const store = new Map<string, string | Entry.Entry>()
    let failing: ReadonlySet<Operation> = new Set()
    const calls: Record<Operation, number> = {
      get: 0,
      getMany: 0,
      set: 0,
      setMany: 0,
      remove: 0,
      removeMatching: 0,
      clear: 0
    }
    const now = () => clock.unsafeCurrentTimeMillis()

    const op = <A>(operation: Operation, body: () => A): Effect.Effect<A, CacheError.TierError> =>
      Effect.suspend(() => {
        calls[operation]++
        if (failing.has(operation)) {
          return Effect.fail(
            new CacheError.TierError({ tier: name, operation, reason: "failure injected by the test" })
          )
        }
        return Effect.try({
          try: body,
          catch: (cause) =>
            new CacheError.TierError({
              tier: name,
              operation,
              reason: `the entry could not be encoded: ${cause instanceof Error ? cause.message : String(cause)}`
            })
        })
      })

    const read = (key: string): Option.Option<Entry.Entry> => {
      const held = store.get(key)
      const entry = typeof held === "string" ? Entry.deserialize(held) : held
      if (entry === undefined) return Option.none()
      if (Entry.isGone(entry, now())) {
        store.delete(key)
        return Option.none()
      }
      return Option.some(entry)
    }
    /** Holds `held` (an entry's wire form, or a planted entry) for `entry`'s lifetime. */
    const write = (key: string, entry: Entry.Entry, held: string | Entry.Entry) => {
      if (Entry.isGone(entry, now())) store.delete(key)
      else store.set(key, held)
    }

    const tier: TestTier = {
      name,
      get: (key) => op("get", () => read(key)),
      getMany: (keys) => op("getMany", () => keys.map(read)),
      set: (key, entry) => op("set", () => write(key, entry, Entry.serialize(entry))),
      setMany: (entries) =>
        op("setMany", () => {
          // Every entry encoded before any is written: one that cannot be writes none, as with Redis.
          const wire = entries.map(([key, entry]) => [key, entry, Entry.serialize(entry)] as const)
          for (const [key, entry, held] of wire) write(key, entry, held)
        }),
      remove: (keys) =>
        op("remove", () => {
          for (const key of keys) store.delete(key)
        }),
      removeMatching: (glob) =>
        op("removeMatching", () => {
          const matches = Glob.matcher(glob)
          let n = 0
          for (const key of [...store.keys()]) {
            if (matches(key) && !Tier.isReservedKey(key)) {
              store.delete(key)
              n++
            }
          }
          return n
        }),
      clear: op("clear", () => store.clear()),
      health: Effect.sync(() => ({
        name,
        healthy: failing.size === 0,
        detail: failing.size === 0 ? `${store.size} entries` : `failing: ${[...failing].join(", ")}`
      })),
      snapshot: Effect.sync(() => {
        const out = new Map<string, Entry.Entry>()
        for (const key of [...store.keys()]) {
          const e = read(key)
          if (e._tag === "Some") out.set(key, e.value)
        }
        return out
      }),
      plant: (key, entry) => Effect.sync(() => write(key, entry, entry)),
      failOn: (operations) =>
        Effect.sync(() => {
          failing =
            operations === "all"
              ? new Set<Operation>(["get", "getMany", "set", "setMany", "remove", "removeMatching", "clear"])
              : operations === "none"
                ? new Set()
                : new Set(operations)
        }),
      calls: Effect.sync(() => ({ ...calls }))
    }
    // Arguments from plain JavaScript are checked before the tier runs (`plant` is not checked);
    // keys and globs must be well-formed UTF-16, as RedisTier's (Redis holds them as UTF-8).
    return Tier.withInputChecks(tier, { wellFormedKeys: true })
  })

/**
 * A fresh test tier as the cache's L2. It gives no handle on the tier's controls (`failOn`,
 * `snapshot`, `plant`, `calls`): for those, make the tier with {@link make} in the test and
 * provide it yourself, `Layer.succeed(Tier.L2, tier)` (examples/testing.ts, `testCacheOn`).
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options?: Options): Layer.Layer<Tier.L2> => Layer.effect(Tier.L2, make(options))
