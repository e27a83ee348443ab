/**
 * The file-system store names a file `encodeURIComponent(<prefix><key>)`, and not every file
 * system keeps apart the names it is given: macOS's (APFS, HFS+) and Windows' (NTFS) file systems
 * are case-insensitive by default, so `session:aB3x` and `session:Ab3X` were one file, and a read
 * of one answered the other's value (another user's session). Windows also drops a name's
 * trailing dots (`user:1.` was `user:1`'s file) and refuses a `*` in a name (every read of such a
 * key was a tier failure). Here, a file system that does what those do, over the real one.
 */
import { FileSystem, KeyValueStore } from "@effect/platform"
import { type PlatformError, SystemError } from "@effect/platform/Error"
import { NodeFileSystem, NodePath } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Entry, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import * as KeyValueStoreTier from "@tiercache/core/KeyValueStoreTier"
import { Effect, Layer, Option, TestClock } from "effect"

/**
 * The real file system, except that in `directory` a file's name is case-insensitive and loses
 * its trailing dots (as on macOS and Windows), and a name with `*` is refused (Windows).
 */
const foldingFileSystem = (directory: string) =>
  Layer.effect(
    FileSystem.FileSystem,
    Effect.map(FileSystem.FileSystem, (fs): FileSystem.FileSystem => {
      const at = <A>(method: string, path: string, f: (path: string) => Effect.Effect<A, PlatformError>) => {
        if (!path.startsWith(`${directory}/`)) return f(path)
        const name = path.slice(directory.length + 1)
        if (name.includes("*")) {
          return Effect.fail(
            new SystemError({
              reason: "InvalidData",
              module: "FileSystem",
              method,
              pathOrDescriptor: path,
              description: "EINVAL: invalid argument"
            })
          )
        }
        return f(`${directory}/${name.toLowerCase().replace(/\.+$/, "")}`)
      }
      return {
        ...fs,
        exists: (path) => at("exists", path, fs.exists),
        readFile: (path) => at("readFile", path, fs.readFile),
        readFileString: (path, encoding) => at("readFile", path, (p) => fs.readFileString(p, encoding)),
        writeFile: (path, data, options) => at("writeFile", path, (p) => fs.writeFile(p, data, options)),
        writeFileString: (path, data, options) =>
          at("writeFile", path, (p) => fs.writeFileString(p, data, options)),
        remove: (path, options) => at("remove", path, (p) => fs.remove(p, options))
      }
    })
  )

const NodeEnv = Layer.merge(NodeFileSystem.layer, NodePath.layer)

/** A cache whose L2 is the file-system store in `directory` on the folding file system. */
const cacheOn = (directory: string) =>
  Effect.gen(function* () {
    const l2 = yield* KeyValueStoreTier.make().pipe(
      Effect.provide(
        KeyValueStore.layerFileSystem(directory).pipe(
          Layer.provide(
            Layer.merge(foldingFileSystem(directory).pipe(Layer.provide(NodeEnv)), NodePath.layer)
          )
        )
      )
    )
    const cache = yield* TieredCache.make().pipe(
      Effect.provideService(Tier.L1, yield* MemoryTier.make({ maxEntries: 100 })),
      Effect.provideService(Tier.L2, l2)
    )
    return { cache, l2 }
  })

describe("KeyValueStoreTier on a file system that folds names", () => {
  it.scoped(
    "keys that differ by case or by a trailing dot keep their own values; a key with * is stored",
    () =>
      Effect.gen(function* () {
        const fs = yield* FileSystem.FileSystem
        const directory = yield* fs.makeTempDirectoryScoped({ prefix: "tiercache-kv-" })
        const writer = yield* cacheOn(directory)
        const values: ReadonlyArray<readonly [string, string]> = [
          ["session:aB3x", "alice"],
          ["session:Ab3X", "bob"],
          ["session:ab3x", "carol"],
          ["user:1", "one"],
          ["user:1.", "one dot"],
          ["user:1..", "one dot dot"],
          ["price:*", "star"]
        ]
        for (const [key, value] of values) yield* writer.cache.set(key, value, { ttl: "1 hour" })
        expect((yield* writer.cache.stats).writeFailures).toBe(0)

        // Another process (its L1 empty) reads them from the files.
        const reader = yield* cacheOn(directory)
        const read: Record<string, unknown> = {}
        for (const [key] of values) read[key] = Option.getOrUndefined(yield* reader.cache.get(key))
        expect(read).toEqual(Object.fromEntries(values))
        expect((yield* reader.cache.stats).tierErrors).toEqual({})

        // A removal of one removes that key only.
        yield* reader.cache.invalidate("session:aB3x")
        yield* reader.cache.invalidate("user:1.")
        expect(Option.map(yield* reader.l2.get("session:Ab3X"), (e) => e.value)).toEqual(Option.some("bob"))
        expect(Option.map(yield* reader.l2.get("user:1"), (e) => e.value)).toEqual(Option.some("one"))
        // And clear reaches them all.
        yield* reader.cache.clear
        for (const [key] of values) expect(yield* reader.l2.get(key)).toEqual(Option.none())
      }).pipe(Effect.provide(NodeEnv))
  )

  it.scoped("with an empty prefix, the keys . and .. are stored (the store refuses those names)", () =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const directory = yield* fs.makeTempDirectoryScoped({ prefix: "tiercache-kv-" })
      const tier = yield* KeyValueStoreTier.make({ prefix: "" }).pipe(
        Effect.provide(KeyValueStore.layerFileSystem(directory))
      )
      for (const key of [".", ".."]) {
        expect(yield* tier.get(key)).toEqual(Option.none())
        yield* tier.set(key, Entry.make({ value: key, now: Date.now(), ttlMs: 60_000 }))
        expect(Option.map(yield* tier.get(key), (e) => e.value)).toEqual(Option.some(key))
      }
      yield* tier.clear
      expect(yield* tier.get("..")).toEqual(Option.none())
    }).pipe(Effect.provide(NodeEnv))
  )

  // Such keys were stored under their own names by earlier versions. An entry's old record left
  // unread is a miss; a tag's old record left unread would let the entries it refuses answer.
  it.scoped("a tag's time written under its own name by an earlier version still refuses its entries", () =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const directory = yield* fs.makeTempDirectoryScoped({ prefix: "tiercache-kv-" })
      const store = yield* KeyValueStore.KeyValueStore.pipe(
        Effect.provide(KeyValueStore.layerFileSystem(directory))
      )
      const open = Effect.gen(function* () {
        const l2 = yield* KeyValueStoreTier.make().pipe(
          Effect.provideService(KeyValueStore.KeyValueStore, store)
        )
        return yield* TieredCache.make().pipe(
          Effect.provideService(Tier.L1, yield* MemoryTier.make({ maxEntries: 100 })),
          Effect.provideService(Tier.L2, l2)
        )
      })
      const old = yield* open
      yield* old.set("product:7", "old price", { ttl: "1 hour", tags: ["category:Books"] })
      // The earlier version's invalidateTag("category:Books"): the tag's record under its own
      // name (the record of a tag without capitals, written now, moved there).
      yield* old.invalidateTag("category:books")
      const record = yield* store.get("tiercache:__tiercache:tag:category:books")
      expect(Option.isSome(record)).toBe(true)
      yield* store.set("tiercache:__tiercache:tag:category:Books", Option.getOrThrow(record))
      yield* store.remove("tiercache:__tiercache:tag:category:books")

      const upgraded = yield* open
      expect(yield* upgraded.get("product:7")).toEqual(Option.none())
      // Not vacuous: an entry of the tag created after its time is answered.
      yield* TestClock.adjust("1 millis")
      yield* upgraded.set("product:8", "new price", { ttl: "1 hour", tags: ["category:Books"] })
      expect(yield* (yield* open).get("product:8")).toEqual(Option.some("new price"))
    }).pipe(Effect.provide(NodeEnv))
  )
})
