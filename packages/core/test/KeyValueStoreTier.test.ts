import { createHash } from "node:crypto"
import { FileSystem, KeyValueStore } from "@effect/platform"
import { SystemError } from "@effect/platform/Error"
import { NodeFileSystem, NodePath } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { CacheError, Entry, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import * as KeyValueStoreTier from "@tiercache/core/KeyValueStoreTier"
import { ChaosTier } from "@tiercache/testing"
import {
  Cause,
  Clock,
  Deferred,
  Effect,
  Either,
  Equal,
  Exit,
  Fiber,
  HashMap,
  Layer,
  Logger,
  LogLevel,
  Metric,
  Option,
  Scope,
  TestClock
} from "effect"
import fc from "fast-check"
import * as KvKeys from "../src/internal/kvKeys.js"

const NodeEnv = Layer.merge(NodeFileSystem.layer, NodePath.layer)

const entryAt = (now: number, value: unknown, ttlMs: number) => Entry.make({ value, now, ttlMs })

/** Builds a tier on `store` in a scope of its own; closing it is the process going away. */
const open = (store: KeyValueStore.KeyValueStore, options?: KeyValueStoreTier.Options) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const tier = yield* KeyValueStoreTier.make(options).pipe(
      Effect.provideService(KeyValueStore.KeyValueStore, store),
      Scope.extend(scope)
    )
    return { tier, close: Scope.close(scope, Exit.void) }
  })

/** A store that fails every operation, as a broken disk would. */
const brokenStore = KeyValueStore.make({
  get: (key) =>
    Effect.fail(
      new SystemError({
        reason: "PermissionDenied",
        module: "KeyValueStore",
        method: "get",
        description: key
      })
    ),
  getUint8Array: () =>
    Effect.fail(
      new SystemError({ reason: "PermissionDenied", module: "KeyValueStore", method: "getUint8Array" })
    ),
  set: () =>
    Effect.fail(new SystemError({ reason: "PermissionDenied", module: "KeyValueStore", method: "set" })),
  remove: () =>
    Effect.fail(new SystemError({ reason: "PermissionDenied", module: "KeyValueStore", method: "remove" })),
  clear: Effect.fail(
    new SystemError({ reason: "PermissionDenied", module: "KeyValueStore", method: "clear" })
  ),
  size: Effect.fail(new SystemError({ reason: "PermissionDenied", module: "KeyValueStore", method: "size" }))
})

/** A cache over a file-system KeyValueStoreTier in a temporary directory (L1: a MemoryTier), and that tier. */
const onFileSystem = Effect.gen(function* () {
  const fs = yield* FileSystem.FileSystem
  const directory = yield* fs.makeTempDirectoryScoped({ prefix: "tiercache-kv-" })
  const store = yield* KeyValueStore.KeyValueStore.pipe(
    Effect.provide(KeyValueStore.layerFileSystem(directory))
  )
  const l2 = yield* KeyValueStoreTier.make().pipe(Effect.provideService(KeyValueStore.KeyValueStore, store))
  const cache = yield* TieredCache.make().pipe(
    Effect.provideService(Tier.L1, yield* MemoryTier.make({ maxEntries: 100 })),
    Effect.provideService(Tier.L2, l2)
  )
  return { cache, l2 }
})

/**
 * 20 rounds on keys `<prefix>:<i>`: the key set to 0, then `removal(key)` at once with a set of
 * the key to 1 a millisecond later; answers the keys the cache then answers otherwise than the
 * store holds them.
 */
const removalRacingSet = (
  { cache, l2 }: Effect.Effect.Success<typeof onFileSystem>,
  prefix: string,
  removal: (key: string) => Effect.Effect<void, unknown>
) =>
  Effect.gen(function* () {
    const disagreeing: Array<string> = []
    for (let i = 0; i < 20; i++) {
      const key = `${prefix}:${i}`
      yield* cache.set(key, 0)
      yield* Effect.all([removal(key), Effect.zipRight(Effect.sleep("1 millis"), cache.set(key, 1))], {
        concurrency: "unbounded",
        discard: true
      })
      const below = Option.map(yield* l2.get(key), (entry) => entry.value)
      if (!Option.getEquivalence(Equal.equals)(yield* cache.get(key), below)) disagreeing.push(key)
    }
    return disagreeing
  })

describe("KeyValueStoreTier", () => {
  it.scoped(
    "on the file system, entries survive a restart; the new instance's pattern removal and clear reach what the old one wrote, and nothing else",
    () =>
      Effect.gen(function* () {
        const fs = yield* FileSystem.FileSystem
        const directory = yield* fs.makeTempDirectoryScoped({ prefix: "tiercache-kv-" })
        const store = yield* KeyValueStore.KeyValueStore.pipe(
          Effect.provide(KeyValueStore.layerFileSystem(directory))
        )
        const now = Date.now()
        const first = yield* open(store)
        yield* first.tier.setMany([
          ["users:1", entryAt(now, { n: 1 }, 60_000)],
          ["users:2", entryAt(now, { n: 2 }, 60_000)],
          ["posts:1", entryAt(now, { p: 1 }, 60_000)]
        ])
        yield* store.set("someone-else", "kept")
        yield* first.close

        const second = yield* open(store)
        const read = yield* second.tier.get("users:1")
        expect(Option.map(read, (e) => e.value)).toEqual(Option.some({ n: 1 }))
        expect(Option.map(read, (e) => e.expiresAt)).toEqual(Option.some(now + 60_000))
        expect(yield* second.tier.removeMatching("users:*")).toBe(2)
        expect(yield* second.tier.get("users:2")).toEqual(Option.none())
        expect(Option.isSome(yield* second.tier.get("posts:1"))).toBe(true)
        yield* second.tier.clear
        expect(yield* second.tier.get("posts:1")).toEqual(Option.none())
        expect(yield* store.get("someone-else")).toEqual(Option.some("kept"))
        yield* second.close

        // After the clear, a third instance finds nothing of the tier's left.
        const third = yield* open(store)
        expect(yield* third.tier.removeMatching("*")).toBe(0)
        expect(yield* store.size).toBeLessThanOrEqual(1 + 16)
      }).pipe(Effect.provide(NodeEnv))
  )

  it.scoped("on the file system, removing a key that was never stored is no tier error", () =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const directory = yield* fs.makeTempDirectoryScoped({ prefix: "tiercache-kv-" })
      const cache = yield* TieredCache.TieredCache.pipe(
        Effect.provide(
          TieredCache.layer().pipe(
            Layer.provide(MemoryTier.layer({ maxEntries: 100 })),
            Layer.provide(KeyValueStoreTier.layer()),
            Layer.provide(KeyValueStore.layerFileSystem(directory)),
            Layer.provide(NodeEnv)
          )
        )
      )
      yield* cache.invalidate("never-stored")
      yield* cache.invalidateMany(["also-never", "nor-this"])
      yield* cache.set("kept", 1)
      yield* cache.invalidateMany(["kept", "absent"])
      expect(yield* cache.get("kept")).toEqual(Option.none())
      const stats = yield* cache.stats
      expect(stats.tierErrors).toEqual({})
      expect(stats.writeFailures).toBe(0)
    }).pipe(Effect.provide(NodeEnv))
  )

  // A file-system store's errors quote the file's path, the key in it ("tiercache%3Auser%3A42"):
  // the TierError's reason and cause carried it into the cache's tier spans, which keep keys out
  // unless keysInSpans (and its logs, its stats' errors).
  it.scoped("a failing file-system store: the TierError names neither the key nor its file", () =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const directory = yield* fs.makeTempDirectoryScoped({ prefix: "tiercache-kv-" })
      const store = yield* KeyValueStore.KeyValueStore.pipe(
        Effect.provide(KeyValueStore.layerFileSystem(directory))
      )
      const { tier } = yield* open(store)
      yield* tier.set("user:42", entryAt(yield* Clock.currentTimeMillis, 1, 60_000))
      // The value's file becomes a directory: reading and writing it fail (EISDIR).
      const [file] = (yield* fs.readDirectory(directory)).filter((name) => name.includes("user"))
      yield* fs.remove(`${directory}/${file}`)
      yield* fs.makeDirectory(`${directory}/${file}/inside`, { recursive: true })
      const failures = [
        yield* Effect.flip(tier.get("user:42")),
        yield* Effect.flip(tier.set("user:42", entryAt(yield* Clock.currentTimeMillis, 2, 60_000)))
      ]
      for (const error of failures) {
        expect(error).toBeInstanceOf(CacheError.TierError)
        expect(error.reason).toMatch(/EISDIR|BadResource|Unknown/)
        // README: "the path reads `<file>`".
        expect(error.reason).toContain("<file>")
        for (const text of [
          error.message,
          error.reason,
          Cause.pretty(Cause.fail(error), { renderErrorCause: true }),
          JSON.stringify(error)
        ]) {
          expect(text).not.toContain("user")
          expect(text).not.toContain(directory)
        }
      }
    }).pipe(Effect.provide(NodeEnv))
  )

  it.scoped("a restarted cache answers from the file-system L2 what the old one computed", () =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const directory = yield* fs.makeTempDirectoryScoped({ prefix: "tiercache-kv-" })
      const cacheOn = (scope: Scope.Scope) =>
        Layer.buildWithScope(
          TieredCache.layer().pipe(
            Layer.provide(MemoryTier.layer({ maxEntries: 100 })),
            Layer.provide(KeyValueStoreTier.layer()),
            Layer.provide(KeyValueStore.layerFileSystem(directory)),
            Layer.provide(NodeEnv)
          ),
          scope
        )
      let computed = 0
      const compute = Effect.sync(() => ++computed)

      const firstScope = yield* Scope.make()
      const first = (yield* cacheOn(firstScope)).unsafeMap.get(
        TieredCache.TieredCache.key
      ) as TieredCache.TieredCache.Service
      expect(yield* first.getOrCompute("answer", compute, { ttl: "1 minute" })).toBe(1)
      yield* Scope.close(firstScope, Exit.void)

      const secondScope = yield* Scope.make()
      const second = (yield* cacheOn(secondScope)).unsafeMap.get(
        TieredCache.TieredCache.key
      ) as TieredCache.TieredCache.Service
      expect(yield* second.getOrCompute("answer", compute, { ttl: "1 minute" })).toBe(1)
      expect(computed).toBe(1)
      expect((yield* second.stats).l2Hits).toBe(1)
      yield* Scope.close(secondScope, Exit.void)
    }).pipe(Effect.provide(NodeEnv))
  )

  it.scoped(
    "lifetimes follow the Clock: a gone entry is a miss, and the sweep removes it from the store",
    () =>
      Effect.gen(function* () {
        const store = yield* KeyValueStore.KeyValueStore
        const { tier } = yield* open(store, { sweepInterval: "10 seconds", prefix: "p:" })
        const now = yield* Clock.currentTimeMillis
        yield* tier.set("short", Entry.make({ value: "s", now, ttlMs: 1_000, graceMs: 1_000 }))
        yield* tier.set("long", entryAt(now, "l", 60_000))
        yield* TestClock.adjust("1500 millis")
        // Stale, not gone: still answered (the cache decides what to do with stale entries).
        expect(Option.map(yield* tier.get("short"), (e) => e.value)).toEqual(Option.some("s"))
        yield* TestClock.adjust("1 second")
        expect(yield* tier.get("short")).toEqual(Option.none())
        expect(yield* store.has("p:short")).toBe(true)
        yield* TestClock.adjust("10 seconds")
        expect(yield* store.has("p:short")).toBe(false)
        expect(yield* store.has("p:long")).toBe(true)
        expect(Option.map(yield* tier.get("long"), (e) => e.value)).toEqual(Option.some("l"))
      }).pipe(Effect.provide(KeyValueStore.layerMemory))
  )

  // README: the tier "removes gone entries every `sweepInterval` (default 1 minute)".
  it.scoped("without a sweepInterval, gone entries leave the store at the first minute's sweep", () =>
    Effect.gen(function* () {
      const store = yield* KeyValueStore.KeyValueStore
      const { tier } = yield* open(store, { prefix: "p:" })
      const now = yield* Clock.currentTimeMillis
      yield* tier.set("short", entryAt(now, "s", 1_000))
      yield* TestClock.adjust("59999 millis")
      expect(yield* tier.get("short")).toEqual(Option.none())
      expect(yield* store.has("p:short")).toBe(true)
      yield* TestClock.adjust("1 millis")
      expect(yield* store.has("p:short")).toBe(false)
    }).pipe(Effect.provide(KeyValueStore.layerMemory))
  )

  // README, Tags: an entry carrying a tag invalidated at or after its creation "is a miss
  // everywhere"; `clear` removes the tags' records once the other keys are gone. The tier removed
  // its keys one by one in its index's order, the tag's record among them: from then until the
  // last entry carrying the tag was removed, the clearing cache (it forgets its tag times first)
  // read the tag's time afresh, found none and answered the entries invalidateTag had refused.
  it.scoped("a clear removes a tag's record only after the entries it refuses", () =>
    Effect.gen(function* () {
      const inner = yield* KeyValueStore.KeyValueStore
      // A store whose removals each take a moment, as a file system's do.
      const store = KeyValueStore.make({
        get: inner.get,
        getUint8Array: inner.getUint8Array,
        set: inner.set,
        remove: (key) => Effect.zipRight(Effect.yieldNow(), inner.remove(key)),
        clear: inner.clear,
        size: inner.size
      })
      const { tier } = yield* open(store, { prefix: "p:" })
      const l1 = yield* MemoryTier.make({ maxEntries: 1_000 })
      const cache = yield* TieredCache.make({ instanceId: "a" }).pipe(
        Effect.provideService(Tier.L1, l1),
        Effect.provideService(Tier.L2, tier)
      )
      const keys = Array.from({ length: 200 }, (_, i) => `k${i}`)
      for (const key of keys) yield* cache.set(key, key, { tags: ["t"] })
      yield* TestClock.adjust("1 millis")
      yield* cache.invalidateTag("t")
      expect((yield* cache.getMany(keys)).filter(Option.isSome)).toEqual([])
      const clearing = yield* Effect.fork(cache.clear)
      // The moment the record is gone (or the clear has ended): the entries still there must be
      // refused.
      while (clearing.unsafePoll() === null && (yield* inner.has("p:__tiercache:tag:t"))) {
        yield* Effect.yieldNow()
      }
      const answered = (yield* cache.getMany(keys)).filter(Option.isSome).length
      yield* Fiber.join(clearing)
      expect({ answered }).toEqual({ answered: 0 })
      // Not vacuous: the clear removed the record too.
      expect(yield* inner.has("p:__tiercache:tag:t")).toBe(false)
    }).pipe(Effect.provide(KeyValueStore.layerMemory))
  )

  it.scoped("an entry written while a sweep runs survives it, though the sweep saw the old one gone", () =>
    Effect.gen(function* () {
      const inner = yield* KeyValueStore.KeyValueStore
      const entered = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      let hold = false
      // The sweep reads "p:a", then waits (holding what it read) until released.
      const store = KeyValueStore.make({
        ...inner,
        get: (key) =>
          hold && key === "p:a"
            ? Effect.tap(inner.get(key), () =>
                Effect.zipRight(Deferred.succeed(entered, undefined), Deferred.await(release))
              )
            : inner.get(key)
      })
      const { tier } = yield* open(store, { sweepInterval: "10 seconds", prefix: "p:" })
      const start = yield* Clock.currentTimeMillis
      yield* tier.set("a", entryAt(start, "old", 1_000))
      yield* TestClock.adjust("2 seconds")
      hold = true
      yield* TestClock.adjust("10 seconds")
      yield* Deferred.await(entered)
      hold = false
      // Read "old" (gone); now a fresh value lands before the sweep goes on.
      yield* tier.set("a", entryAt(yield* Clock.currentTimeMillis, "new", 60_000))
      yield* Deferred.succeed(release, undefined)
      yield* Effect.yieldNow().pipe(Effect.repeatN(20))
      expect(Option.map(yield* tier.get("a"), (e) => e.value)).toEqual(Option.some("new"))
      expect(yield* inner.has("p:a")).toBe(true)
    }).pipe(Effect.provide(KeyValueStore.layerMemory))
  )

  it.scoped("a stored value that is no entry is a miss; the index's keys are refused", () =>
    Effect.gen(function* () {
      const store = yield* KeyValueStore.KeyValueStore
      const { tier } = yield* open(store)
      yield* store.set("tiercache:bad", "not json")
      yield* store.set("tiercache:shape", JSON.stringify({ v: 1 }))
      expect(yield* tier.get("bad")).toEqual(Option.none())
      expect(yield* tier.get("shape")).toEqual(Option.none())
      const refused = yield* Effect.either(tier.set("__tiercache:kv-index:3", entryAt(Date.now(), 1, 60_000)))
      expect(Either.isLeft(refused) && refused.left._tag).toBe("TierError")
    }).pipe(Effect.provide(KeyValueStore.layerMemory))
  )

  it.scoped(
    "each read of a stored value that is no entry counts once in foreignValues; another key's record does not",
    () =>
      Effect.gen(function* () {
        const store = yield* KeyValueStore.KeyValueStore
        const { tier } = yield* open(store, { name: "kv-foreign" })
        const counted = Effect.map(
          Metric.value(Metric.tagged(KeyValueStoreTier.foreignValues, "tier", "kv-foreign")),
          (state) => state.count
        )
        const now = yield* Clock.currentTimeMillis
        yield* tier.set("good", entryAt(now, 1, 60_000))
        yield* store.set("tiercache:text", "plain text")
        yield* store.set("tiercache:json", JSON.stringify({ user: "ada" }))
        // Key "Other"'s store key (hashed: a capital letter) holding another key's record.
        const [at, record] = KvKeys.make("tiercache:").record(
          "Other",
          Entry.serialize(entryAt(now, 2, 60_000))
        )
        yield* store.set(at, record.replace('"k":"Other"', '"k":"Another"'))
        expect(yield* tier.get("Other")).toEqual(Option.none())
        expect(yield* tier.get("missing")).toEqual(Option.none())
        expect(Option.isSome(yield* tier.get("good"))).toBe(true)
        expect(yield* counted).toBe(0)
        expect(yield* tier.get("text")).toEqual(Option.none())
        expect(yield* counted).toBe(1)
        const many = yield* tier.getMany(["json", "good", "text", "missing"])
        expect(many.map(Option.isSome)).toEqual([false, true, false, false])
        expect(yield* counted).toBe(3)
        // Overwritten by an entry: no longer counted.
        yield* tier.set("text", entryAt(now, 3, 60_000))
        expect(Option.map(yield* tier.get("text"), (e) => e.value)).toEqual(Option.some(3))
        expect(yield* counted).toBe(3)
      }).pipe(Effect.provide(KeyValueStore.layerMemory))
  )

  it.scoped("a stored value that is no entry is logged without its key (log lines reach tier spans)", () =>
    Effect.gen(function* () {
      const store = yield* KeyValueStore.KeyValueStore
      const { tier } = yield* open(store)
      yield* store.set("tiercache:user:42", "not json")
      const lines: Array<string> = []
      const logger = Logger.make(({ annotations, message }) => {
        lines.push(JSON.stringify([message, HashMap.toEntries(annotations)]))
      })
      expect(
        yield* tier
          .get("user:42")
          .pipe(
            Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
            Logger.withMinimumLogLevel(LogLevel.Debug)
          )
      ).toEqual(Option.none())
      expect(lines.length).toBe(1)
      expect(lines[0]).not.toContain("user")
    }).pipe(Effect.provide(KeyValueStore.layerMemory))
  )

  it.scoped("a failing store fails with a TierError: when the tier is built, and on every operation", () =>
    Effect.gen(function* () {
      const build = yield* Effect.exit(
        KeyValueStoreTier.make({ name: "disk" }).pipe(
          Effect.provideService(KeyValueStore.KeyValueStore, brokenStore)
        )
      )
      expect(Exit.isFailure(build)).toBe(true)
      if (Exit.isFailure(build)) {
        const error = build.cause._tag === "Fail" ? (build.cause.error as CacheError.TierError) : undefined
        expect(error).toBeInstanceOf(CacheError.TierError)
        expect(error?.tier).toBe("disk")
        expect(error?.reason).toContain("PermissionDenied")
      }

      // A store that opens, then breaks.
      const inner = yield* KeyValueStore.KeyValueStore
      let broken = false
      const flaky = KeyValueStore.make({
        get: (key) => (broken ? brokenStore.get(key) : inner.get(key)),
        getUint8Array: (key) => inner.getUint8Array(key),
        set: (key, value) => (broken ? brokenStore.set(key, value) : inner.set(key, value)),
        remove: (key) => (broken ? brokenStore.remove(key) : inner.remove(key)),
        clear: inner.clear,
        size: Effect.suspend(() => (broken ? brokenStore.size : inner.size))
      })
      const { tier } = yield* open(flaky, { name: "disk" })
      yield* tier.set("k", entryAt(Date.now(), 1, 60_000))
      broken = true
      const operations = {
        get: tier.get("k"),
        set: tier.set("k2", entryAt(Date.now(), 2, 60_000)),
        remove: tier.remove(["k"]),
        removeMatching: tier.removeMatching("*"),
        clear: tier.clear
      }
      for (const [operation, effect] of Object.entries(operations)) {
        const result = yield* Effect.either(effect as Effect.Effect<unknown, CacheError.TierError>)
        expect(Either.isLeft(result), operation).toBe(true)
        if (Either.isLeft(result)) {
          expect(result.left).toBeInstanceOf(CacheError.TierError)
          expect(result.left.operation).toBe(operation)
        }
      }
      expect((yield* tier.health).healthy).toBe(false)
      broken = false
      expect((yield* tier.health).healthy).toBe(true)
      expect(Option.map(yield* tier.get("k"), (e) => e.value)).toEqual(Option.some(1))
    }).pipe(Effect.provide(KeyValueStore.layerMemory))
  )

  it.effect("layer provides the L2", () =>
    Effect.gen(function* () {
      const l2 = yield* Tier.L2
      expect(l2.name).toBe("kv")
    }).pipe(Effect.provide(KeyValueStoreTier.layer().pipe(Layer.provide(KeyValueStore.layerMemory))))
  )

  // README: the index is "written before a new key's value: after a crash it may name keys that
  // are gone, never miss one that is there". Tier calls get interrupted in normal use (the
  // breaker's timeout, a caller's timeout, the scope closing on a sweep). On the file-system
  // store an interrupted `set` of an index shard stopped Node's writeFile after it truncated the
  // file: an empty shard, read as no keys by the restarted tier. 64 entries are stored and
  // acknowledged, 64 more sets interrupted part-way; after a restart clear removes all 64.
  it.scopedLive(
    "interrupted sets do not empty index shards: after a restart clear reaches every stored entry",
    () =>
      Effect.gen(function* () {
        const fs = yield* FileSystem.FileSystem
        const directory = yield* fs.makeTempDirectoryScoped({ prefix: "tiercache-kv-" })
        const store = yield* KeyValueStore.KeyValueStore.pipe(
          Effect.provide(KeyValueStore.layerFileSystem(directory))
        )
        const first = yield* open(store)
        const now = Date.now()
        const kept = Array.from({ length: 64 }, (_, i) => `kept:${i}`)
        for (const key of kept) yield* first.tier.set(key, entryAt(now, key, 3_600_000))
        for (let i = 0; i < 64; i++) {
          const setting = yield* Effect.fork(first.tier.set(`late:${i}`, entryAt(now, i, 3_600_000)))
          yield* Effect.yieldNow().pipe(Effect.repeatN(i % 8))
          yield* Fiber.interrupt(setting)
        }
        yield* first.close

        const second = yield* open(store)
        yield* second.tier.clear
        const left: Array<string> = []
        for (const key of kept) if (yield* store.has(`tiercache:${key}`)) left.push(key)
        expect(left, "acknowledged entries that clear no longer reaches").toEqual([])
      }).pipe(Effect.provide(NodeEnv))
  )

  // README ("KeyValueStoreTier"), KeyValueStoreTier.ts module doc: the index "never miss[es] one
  // that is there, so `invalidatePattern` and `clear` still reach everything". Here a set and a
  // remove of one key overlap (two fibers; on a file-system store every step is async I/O):
  // set records the key in the index and waits for its index write, remove deletes the (not yet
  // written) value and drops the key from the index, then set writes the value. Whichever wins,
  // a later `clear` must remove what is stored. Expected: after clear, the key is a miss.
  it.scoped(
    "a set overlapping a remove of its key leaves the key indexed if its value stays: clear reaches it",
    () =>
      Effect.gen(function* () {
        const inner = yield* KeyValueStore.KeyValueStore
        const indexWriteStarted = yield* Deferred.make<void>()
        const releaseIndexWrite = yield* Deferred.make<void>()
        let hold = false
        // The index write of set("a") waits until released (a slow disk write).
        const store = KeyValueStore.make({
          ...inner,
          set: (key, value) =>
            hold && key.startsWith("p:__tiercache:kv-index:")
              ? Effect.zipRight(
                  Effect.zipRight(
                    Deferred.succeed(indexWriteStarted, undefined),
                    Deferred.await(releaseIndexWrite)
                  ),
                  inner.set(key, value)
                )
              : inner.set(key, value)
        })
        const { tier } = yield* open(store, { prefix: "p:" })
        const now = yield* Clock.currentTimeMillis
        hold = true
        const setting = yield* Effect.fork(tier.set("a", entryAt(now, "old", 60_000)))
        yield* Deferred.await(indexWriteStarted)
        hold = false
        yield* tier.remove(["a"])
        yield* Deferred.succeed(releaseIndexWrite, undefined)
        yield* Fiber.join(setting)

        yield* tier.clear
        expect(yield* inner.has("p:a"), "clear left p:a in the store").toBe(false)
        expect(yield* tier.get("a")).toEqual(Option.none())
      }).pipe(Effect.provide(KeyValueStore.layerMemory))
  )

  // The other order of the same overlap: set's index write is done before the remove ends. Set
  // records the key and writes its index, and comes to write the value while a remove of the key
  // holds the key's lock (its store delete is slow); the remove then drops the key from the
  // index, and set writes the value once the lock is free. README: `clear` reaches everything
  // the tier stored. Expected: set records the key again under the lock, so after clear the key
  // is a miss. It used to record the key when it began to wait for the lock (the key was still
  // in the index then), so the remove's drop stood and the value stayed, unindexed, out of
  // reach of clear, of pattern removals and of the sweep, also after a restart.
  it.scoped(
    "a set that waits for a remove of its key to write its value leaves the key indexed: clear reaches it",
    () =>
      Effect.gen(function* () {
        const inner = yield* KeyValueStore.KeyValueStore
        const indexWriteStarted = yield* Deferred.make<void>()
        const releaseIndexWrite = yield* Deferred.make<void>()
        const indexWritten = yield* Deferred.make<void>()
        const removeStarted = yield* Deferred.make<void>()
        const releaseRemove = yield* Deferred.make<void>()
        let holdIndex = false
        let holdRemove = false
        // The index write of set("a") and the store delete of remove(["a"]) wait until released
        // (a slow disk); the index write reports when it is done.
        const store = KeyValueStore.make({
          ...inner,
          set: (key, value) => {
            if (!holdIndex || !key.startsWith("p:__tiercache:kv-index:")) return inner.set(key, value)
            holdIndex = false
            return Effect.zipRight(
              Effect.zipRight(
                Deferred.succeed(indexWriteStarted, undefined),
                Deferred.await(releaseIndexWrite)
              ),
              Effect.zipRight(inner.set(key, value), Deferred.succeed(indexWritten, undefined))
            )
          },
          remove: (key) => {
            if (!holdRemove) return inner.remove(key)
            holdRemove = false
            return Effect.zipRight(
              Effect.zipRight(Deferred.succeed(removeStarted, undefined), Deferred.await(releaseRemove)),
              inner.remove(key)
            )
          }
        })
        const { tier } = yield* open(store, { prefix: "p:" })
        const now = yield* Clock.currentTimeMillis
        holdIndex = true
        const setting = yield* Effect.fork(tier.set("a", entryAt(now, "old", 60_000)))
        yield* Deferred.await(indexWriteStarted)
        // The remove takes the key's lock and waits in its store delete.
        holdRemove = true
        const removing = yield* Effect.fork(tier.remove(["a"]))
        yield* Deferred.await(removeStarted)
        // Set's index write ends; set comes to write the value and waits for the key's lock.
        yield* Deferred.succeed(releaseIndexWrite, undefined)
        yield* Deferred.await(indexWritten)
        yield* Effect.yieldNow().pipe(Effect.repeatN(16))
        expect(setting.unsafePoll(), "set waits for the remove's lock").toBeNull()
        // The remove deletes (nothing yet) and drops the key from the index; then set writes.
        yield* Deferred.succeed(releaseRemove, undefined)
        yield* Fiber.join(removing)
        yield* Fiber.join(setting)
        expect(yield* inner.has("p:a"), "set's value is stored").toBe(true)

        yield* tier.clear
        expect(yield* inner.has("p:a"), "clear left p:a in the store").toBe(false)
        expect(yield* tier.get("a")).toEqual(Option.none())
      }).pipe(Effect.provide(KeyValueStore.layerMemory))
  )

  // The same race through TieredCache on the file-system store of the README, with no hooks:
  // `set` and `invalidate` of one key from two fibers, then `clear`. README: `clear` reaches
  // everything the tier stored. Expected: after clear, get answers none (the value was left
  // unindexed, so clear missed it and get answered it from L2).
  it.scoped("TieredCache on a file-system store: after set || invalidate, then clear, get answers none", () =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const directory = yield* fs.makeTempDirectoryScoped({ prefix: "tiercache-kv-" })
      const cache = yield* TieredCache.TieredCache.pipe(
        Effect.provide(
          TieredCache.layer().pipe(
            Layer.provide(MemoryTier.layer({ maxEntries: 100 })),
            Layer.provide(KeyValueStoreTier.layer()),
            Layer.provide(KeyValueStore.layerFileSystem(directory)),
            Layer.provide(NodeEnv)
          )
        )
      )
      const survivors: Array<string> = []
      for (let i = 0; i < 20; i++) {
        const key = `k${i}`
        yield* Effect.all([cache.set(key, i, { ttl: "1 hour" }), cache.invalidate(key)], {
          concurrency: "unbounded",
          discard: true
        })
        yield* cache.clear
        if (Option.isSome(yield* cache.get(key))) survivors.push(key)
      }
      expect(survivors, "keys answered after clear").toEqual([])
    }).pipe(Effect.provide(NodeEnv))
  )
  // A pattern invalidation or a clear walks the tier's index, one key after the other: a set of a
  // covered key made meanwhile stored its value in L1 and may have landed on disk before the walk
  // reached it. Expected: the cache never answers from L1 a value the store no longer holds.
  it.scopedLive(
    "TieredCache on a file-system store: invalidatePattern || set and clear || set agree with L2",
    () =>
      Effect.gen(function* () {
        const world = yield* onFileSystem
        const disagreeing = [
          ...(yield* removalRacingSet(world, "pattern", () => world.cache.invalidatePattern("pattern:*"))),
          ...(yield* removalRacingSet(world, "clear", () => world.cache.clear))
        ]
        expect(disagreeing, "keys answered otherwise than the store holds them").toEqual([])
      }).pipe(Effect.provide(NodeEnv))
  )
  // invalidateMany removes its keys one after the other: a set of its last key made meanwhile
  // may land on disk before the removal reaches that key. Expected: as for a pattern, the cache
  // never answers from L1 a value the store no longer holds.
  it.scopedLive(
    "TieredCache on a file-system store: invalidateMany || set of its last key agrees with L2",
    () =>
      Effect.gen(function* () {
        const world = yield* onFileSystem
        const others = Array.from({ length: 20 }, (_, j) => `other:${j}`)
        const disagreeing = yield* removalRacingSet(world, "many", (key) =>
          world.cache.invalidateMany([...others, key])
        )
        expect(disagreeing, "keys answered otherwise than the store holds them").toEqual([])
      }).pipe(Effect.provide(NodeEnv))
  )
  // kvSweep.ts module doc: the sweep "leaves alone the keys being written, and those written while
  // it ran (markWriting notes them): they may hold a new value it did not see". Two entries are
  // gone; the sweep has decided to remove both and is removing the first (a slow disk). Meanwhile
  // a fresh value of the second key is written and completes. Expected: the fresh value survives
  // the sweep (it was written while the sweep ran); the sweep used to delete it (a lost write).
  it.scoped("a value written while the sweep is removing other gone entries survives the sweep", () =>
    Effect.gen(function* () {
      const inner = yield* KeyValueStore.KeyValueStore
      const removing = yield* Deferred.make<string>()
      const release = yield* Deferred.make<void>()
      let hold = false
      // The sweep's first removal waits until released.
      const store = KeyValueStore.make({
        ...inner,
        remove: (key) => {
          if (!hold) return inner.remove(key)
          hold = false
          return Effect.zipRight(
            Effect.zipRight(Deferred.succeed(removing, key), Deferred.await(release)),
            inner.remove(key)
          )
        }
      })
      const { tier } = yield* open(store, { sweepInterval: "10 seconds", prefix: "p:" })
      const start = yield* Clock.currentTimeMillis
      yield* tier.setMany([
        ["a", entryAt(start, "old-a", 1_000)],
        ["b", entryAt(start, "old-b", 1_000)]
      ])
      yield* TestClock.adjust("2 seconds")
      hold = true
      yield* TestClock.adjust("10 seconds")
      const first = yield* Deferred.await(removing)
      const other = first === "p:a" ? "b" : "a"
      // The sweep is removing `first`; a fresh value of the other key lands now.
      yield* tier.set(other, entryAt(yield* Clock.currentTimeMillis, "new", 60_000))
      expect(Option.map(yield* tier.get(other), (e) => e.value)).toEqual(Option.some("new"))
      yield* Deferred.succeed(release, undefined)
      yield* Effect.yieldNow().pipe(Effect.repeatN(50))
      expect(
        Option.map(yield* tier.get(other), (e) => e.value),
        "the fresh value was swept"
      ).toEqual(Option.some("new"))
    }).pipe(Effect.provide(KeyValueStore.layerMemory))
  )

  // README: with `KeyValueStore.layerFileSystem(dir)` the tier is "a persistent L2 without
  // Redis"; DESIGN "Bad input" lists what a key may not be (empty, non-string...): a 30-character
  // Japanese key is a valid key. The tier stores `<prefix><key>` as a file named
  // encodeURIComponent(prefix + key): 9 bytes per CJK character, so about 28 such characters
  // exceed the 255-byte file-name limit and every get/set of the key failed (ENAMETOOLONG) as a
  // TierError. A read of such a key (even one never written) was then a tier failure, not a
  // miss, and five of them opened the L2's breaker: ordinary keys that are in L2 stopped being
  // answered from it. Expected: instance b answers `short` from the shared L2, and the long key
  // too (stored under its hash, kvKeys.ts).
  it.scoped(
    "long unicode keys on the file-system store are stored and read; reads of absent ones are misses, not tier errors",
    () =>
      Effect.gen(function* () {
        const fs = yield* FileSystem.FileSystem
        const directory = yield* fs.makeTempDirectoryScoped({ prefix: "tiercache-kv-" })
        const cacheLayer = TieredCache.layer().pipe(
          Layer.provide(MemoryTier.layer({ maxEntries: 100 })),
          Layer.provide(KeyValueStoreTier.layer()),
          Layer.provide(KeyValueStore.layerFileSystem(directory)),
          Layer.provide(NodeEnv)
        )
        const a = yield* TieredCache.TieredCache.pipe(Effect.provide(cacheLayer))
        const b = yield* TieredCache.TieredCache.pipe(Effect.provide(cacheLayer))
        const longKey = `商品:${"ノートパソコン".repeat(5)}` // 38 characters
        yield* a.set("short", "kept", { ttl: "1 hour" })
        yield* a.set(longKey, "long", { ttl: "1 hour" })
        // b looks up a few product names nobody cached yet: misses, nothing more.
        for (let i = 0; i < 6; i++) yield* b.get(`${longKey}:${i}`)
        expect(yield* b.get("short"), "a value in L2 is not answered").toEqual(Option.some("kept"))
        expect(yield* b.get(longKey)).toEqual(Option.some("long"))
        expect((yield* b.stats).tierErrors).toEqual({})
      }).pipe(Effect.provide(NodeEnv))
  )

  // A short key with a lone surrogate has no encodeURIComponent either (the file-system store
  // would throw a URIError out of get): stored under its hash too.
  it.scoped("a short key with a lone surrogate on the file-system store is a miss, then stored", () =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const directory = yield* fs.makeTempDirectoryScoped({ prefix: "tiercache-kv-" })
      const store = yield* KeyValueStore.KeyValueStore.pipe(
        Effect.provide(KeyValueStore.layerFileSystem(directory))
      )
      const tier = yield* KeyValueStoreTier.make().pipe(
        Effect.provideService(KeyValueStore.KeyValueStore, store)
      )
      const key = "a\uD800"
      expect(yield* Effect.exit(Effect.suspend(() => tier.get(key)))).toEqual(Exit.succeed(Option.none()))
      yield* Effect.suspend(() => tier.set(key, Entry.make({ value: "v", now: Date.now(), ttlMs: 60_000 })))
      const back = yield* Effect.suspend(() => tier.get(key))
      expect(Option.map(back, (e) => e.value)).toEqual(Option.some("v"))
    }).pipe(Effect.provide(NodeEnv))
  )

  it.scoped("options from plain JS that cannot work are a CacheConfigError naming the option, at build", () =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const directory = yield* fs.makeTempDirectoryScoped({ prefix: "tiercache-kv-" })
      const store = yield* KeyValueStore.KeyValueStore.pipe(
        Effect.provide(KeyValueStore.layerFileSystem(directory))
      )
      // biome-ignore lint/suspicious/noExplicitAny: the point is to ignore the types
      const js = (options: unknown): any => options
      // Before: null was a TypeError (a defect), a sweepInterval of "abc" a defect, one of 0 or
      // less swept without pause for good, a prefix with a lone surrogate died of a URIError on
      // the file system at build, and a prefix of 5 or null was stored as "5" or "null".
      const cases: ReadonlyArray<readonly [unknown, string]> = [
        [null, "options"],
        ["tiercache:", "options"],
        [{ prefix: 5 }, "prefix"],
        [{ prefix: null }, "prefix"],
        [{ prefix: "p\uD800:" }, "prefix"],
        [{ sweepInterval: "abc" }, "sweepInterval"],
        [{ sweepInterval: 0 }, "sweepInterval"],
        [{ sweepInterval: -1 }, "sweepInterval"],
        [{ sweepInterval: Number.NaN }, "sweepInterval"],
        [{ sweepInterval: Number.POSITIVE_INFINITY }, "sweepInterval"]
      ]
      for (const [options, option] of cases) {
        const built = yield* Effect.exit(
          Effect.scoped(KeyValueStoreTier.make(js(options))).pipe(
            Effect.provideService(KeyValueStore.KeyValueStore, store),
            Effect.timeout("5 seconds")
          )
        )
        const error = Exit.isFailure(built) && built.cause._tag === "Fail" ? built.cause.error : undefined
        expect([options, error?._tag, (error as CacheError.CacheConfigError | undefined)?.option]).toEqual([
          options,
          "CacheConfigError",
          option
        ])
      }
      // What the types allow still builds: a duration, and a well-formed non-ASCII prefix.
      const tier = yield* KeyValueStoreTier.make({ prefix: "日本\u{1F600}:", sweepInterval: 50 }).pipe(
        Effect.provideService(KeyValueStore.KeyValueStore, store)
      )
      yield* tier.set("k", Entry.make({ value: "v", now: Date.now(), ttlMs: 60_000 }))
      expect(Option.map(yield* tier.get("k"), (e) => e.value)).toEqual(Option.some("v"))
    }).pipe(Effect.provide(NodeEnv))
  )

  it.scoped(
    "a long key lives under its hash: removeMatching and clear reach it, another key's record there is a miss",
    () =>
      Effect.gen(function* () {
        const inner = yield* KeyValueStore.KeyValueStore
        const { tier } = yield* open(inner, { prefix: "p:" })
        const stored = KvKeys.make("p:")
        const now = yield* Clock.currentTimeMillis
        const long = `user:${"é".repeat(40)}`
        const other = `user:${"è".repeat(40)}`
        const surrogate = `lone:\uD800:${"x".repeat(300)}`
        yield* tier.setMany([
          [long, entryAt(now, "long", 60_000)],
          [surrogate, entryAt(now, "lone", 60_000)]
        ])
        expect(yield* inner.has(`p:${long}`)).toBe(false)
        expect(yield* inner.has(stored.storeKey(long))).toBe(true)
        expect(Option.map(yield* tier.get(long), (e) => e.value)).toEqual(Option.some("long"))
        expect(Option.map(yield* tier.get(surrogate), (e) => e.value)).toEqual(Option.some("lone"))
        // A record of `long` found where `other` is stored (a hash collision) is not other's.
        const record = Option.getOrThrow(yield* inner.get(stored.storeKey(long)))
        yield* inner.set(stored.storeKey(other), record)
        expect(yield* tier.get(other)).toEqual(Option.none())
        // A key shaped like a hashed name is hashed too: it cannot land on another key's record.
        yield* tier.set("__tiercache:kv-hash:x", entryAt(now, "plain", 60_000))
        expect(yield* inner.has("p:__tiercache:kv-hash:x")).toBe(false)
        expect(yield* tier.removeMatching("user:*")).toBe(1)
        expect(yield* tier.get(long)).toEqual(Option.none())
        yield* tier.clear
        expect(yield* tier.get(surrogate)).toEqual(Option.none())
        expect(yield* tier.get("__tiercache:kv-hash:x")).toEqual(Option.none())
      }).pipe(Effect.provide(KeyValueStore.layerMemory))
  )

  it.scoped("writeIfNewer writes or removes unless the stored entry is newer, one key at a time", () =>
    Effect.gen(function* () {
      const inner = yield* KeyValueStore.KeyValueStore
      const { tier } = yield* open(inner)
      yield* TestClock.setTime(1_000)
      const at = (t: number, value: string) => Entry.make({ value, now: t, ttlMs: 60_000 })
      yield* tier.set("k", at(500, "stored"))
      expect(
        yield* tier.writeIfNewer!([
          { key: "k", entry: at(400, "older"), at: 400 },
          { key: "n", entry: at(400, "new key"), at: 400 },
          { key: "gone", entry: Entry.make({ value: "x", now: 0, ttlMs: 10 }), at: 10 }
        ])
      ).toEqual([false, true, true])
      expect(Option.map(yield* tier.get("k"), (e) => e.value)).toEqual(Option.some("stored"))
      expect(Option.map(yield* tier.get("n"), (e) => e.value)).toEqual(Option.some("new key"))
      expect(yield* tier.writeIfNewer!([{ key: "k", entry: undefined, at: 600 }])).toEqual([true])
      expect(yield* tier.get("k")).toEqual(Option.none())
      // Indexed as it is stored: clear reaches what it wrote.
      yield* tier.clear
      expect(yield* tier.get("n")).toEqual(Option.none())
    }).pipe(Effect.provide(KeyValueStore.layerMemory))
  )

  // README (Tags): two invalidations of one tag whose writes land in the other order keep the
  // later time; without writeIfNewer the tier's get, compare and set let the earlier one land
  // last, and a restarted cache served an entry the later invalidation covered.
  it.scoped("two invalidateTag of one tag whose writes land in the other order: the later time stays", () =>
    Effect.gen(function* () {
      const kv = yield* KeyValueStoreTier.make().pipe(Effect.provide(KeyValueStore.layerMemory))
      const l2 = yield* ChaosTier.wrap(kv)
      const cacheOn = Effect.gen(function* () {
        const l1 = yield* MemoryTier.make({ maxEntries: 100 })
        return yield* TieredCache.make().pipe(
          Effect.provideService(Tier.L1, l1),
          Effect.provideService(Tier.L2, l2)
        )
      })
      const a = yield* cacheOn
      yield* TestClock.adjust(10)
      // The first invalidation's store write is slow (I/O latency), the second's is not.
      yield* l2.delay("set", "100 millis")
      const first = yield* Effect.fork(a.invalidateTag("t"))
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow()
      yield* l2.delay("set", 0)
      yield* TestClock.adjust(10)
      yield* a.set("k", "old", { tags: ["t"] }) // created at 20
      yield* TestClock.adjust(10)
      yield* a.invalidateTag("t") // at 30: covers "k"
      yield* TestClock.adjust(200)
      yield* Fiber.join(first)
      expect(Option.map(yield* kv.get("__tiercache:tag:t"), (e) => e.value)).toEqual(Option.some(30))
      // A restart: a new instance over the same store reads the tag's time from it.
      expect(yield* (yield* cacheOn).get("k")).toEqual(Option.none())
    })
  )

  // README (KeyValueStoreTier): "A key is stored as `<prefix><key>`; one a file system could not
  // keep apart is stored as `<prefix>__tiercache:kv-hash:<SHA-256 hex>`, its envelope starting
  // with a "k" field naming the key ...: one whose `encodeURIComponent(<prefix><key>)` would pass
  // 200 bytes ..., and one with an ASCII capital letter or a `*`, or ending with a dot", and the
  // index is "16 shards, each in two records under `<prefix>__tiercache:kv-index:`". The other
  // tests find records through the tier's own naming (KvKeys), so they would follow a change.
  it.scoped("stores keys, hashed keys and the index under the names the README gives", () =>
    Effect.gen(function* () {
      const inner = yield* KeyValueStore.KeyValueStore
      const written = new Set<string>()
      const store = KeyValueStore.make({
        get: inner.get,
        getUint8Array: inner.getUint8Array,
        set: (key, value) =>
          Effect.zipRight(
            Effect.sync(() => written.add(key)),
            inner.set(key, value)
          ),
        remove: inner.remove,
        clear: inner.clear,
        size: inner.size
      })
      const { tier } = yield* open(store, { prefix: "p:" })
      const now = yield* Clock.currentTimeMillis
      const hashedName = (key: string) =>
        `p:__tiercache:kv-hash:${createHash("sha256").update(JSON.stringify(key)).digest("hex")}`
      // "p:" encodes to 4 bytes ("p%3A"): a key of 196 bytes makes 200, kept; 197 passes.
      const plain = ["a".repeat(196), `${"é".repeat(32)}abcd`, "user:1", "user:1.x", "a-b_c!~'()"]
      const hashed = ["a".repeat(197), `${"é".repeat(32)}abcde`, "User:1", "user:*", "user:1.", "."]
      for (const key of [...plain, ...hashed]) yield* tier.set(key, entryAt(now, key, 60_000))
      for (const key of plain) {
        expect(encodeURIComponent(`p:${key}`).length).toBeLessThanOrEqual(200)
        expect(yield* inner.has(`p:${key}`)).toBe(true)
      }
      for (const key of hashed) {
        expect(yield* inner.has(`p:${key}`)).toBe(false)
        const record = Option.getOrThrow(yield* inner.get(hashedName(key)))
        expect(record.startsWith(`{"k":${JSON.stringify(key)},`)).toBe(true)
        expect(Option.map(yield* tier.get(key), (e) => e.value)).toEqual(Option.some(key))
      }
      // The index: enough keys to reach every shard twice, in exactly 32 records.
      for (let i = 0; i < 200; i++) yield* tier.set(`many:${i}`, entryAt(now, i, 60_000))
      const index = [...written].filter((key) => key.startsWith("p:__tiercache:kv-index:"))
      const names = Array.from({ length: 16 }, (_, shard) => [
        `p:__tiercache:kv-index:${shard}`,
        `p:__tiercache:kv-index:${shard}b`
      ]).flat()
      expect(new Set(index)).toEqual(new Set(names))
      const data = [...written].filter((key) => !key.startsWith("p:__tiercache:kv-index:"))
      expect(data.length).toBe(plain.length + hashed.length + 200)
    }).pipe(Effect.provide(KeyValueStore.layerMemory))
  )

  it("counts a store key's encoded length as encodeURIComponent does", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 40 }), (s) => {
        expect(KvKeys.encodedLength(s, Number.POSITIVE_INFINITY)).toBe(encodeURIComponent(s).length)
      }),
      { numRuns: 2000 }
    )
    expect(KvKeys.encodedLength("a\uD800", Number.POSITIVE_INFINITY)).toBe(Number.POSITIVE_INFINITY)
    expect(KvKeys.encodedLength("\uDC00a", Number.POSITIVE_INFINITY)).toBe(Number.POSITIVE_INFINITY)
  })
})
