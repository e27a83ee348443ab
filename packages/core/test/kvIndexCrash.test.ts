/**
 * README (KeyValueStoreTier): the index is "written before a new key's value: after a crash it
 * may name keys that are gone, never miss one that is there, so `invalidatePattern` and `clear`
 * still reach everything after a restart". The file-system store writes a record by truncating
 * its file, then writing it (Node's writeFile): a process killed (or a disk filling up) between
 * the two leaves a record of the index empty or cut short, which read as no keys at all: the
 * restarted tier's clear left every entry of that shard in place, and they were answered.
 */
import { FileSystem, KeyValueStore } from "@effect/platform"
import { SystemError } from "@effect/platform/Error"
import { NodeFileSystem, NodePath } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Entry } from "@tiercache/core"
import * as KeyValueStoreTier from "@tiercache/core/KeyValueStoreTier"
import { Effect, Exit, Layer, Scope } from "effect"

const NodeEnv = Layer.merge(NodeFileSystem.layer, NodePath.layer)

/**
 * A process on the file-system store in `directory` whose next write of a record of the index,
 * once `crash` (or `diskFull`) is called, stops part-way: that record's file keeps the first
 * `cut` characters of its new text. After `crash` nothing more reaches the disk (the process
 * died); after `diskFull` the write fails and the process goes on.
 */
const process_ = (directory: string) =>
  Effect.gen(function* () {
    const inner = yield* KeyValueStore.KeyValueStore.pipe(
      Effect.provide(KeyValueStore.layerFileSystem(directory))
    )
    let armed: number | undefined
    let dies = false
    let dead = false
    const died = (method: string) =>
      Effect.fail(new SystemError({ reason: "Unknown", module: "KeyValueStore", method }))
    const store = KeyValueStore.make({
      get: (key) => (dead ? died("get") : inner.get(key)),
      getUint8Array: (key) => (dead ? died("getUint8Array") : inner.getUint8Array(key)),
      set: (key, value) => {
        if (dead) return died("set")
        if (armed === undefined || !key.includes("kv-index")) return inner.set(key, value)
        const cut = armed
        armed = undefined
        dead = dies
        return Effect.zipRight(inner.set(key, String(value).slice(0, cut)), died("set"))
      },
      remove: (key) => (dead ? died("remove") : inner.remove(key)),
      clear: Effect.suspend(() => (dead ? died("clear") : inner.clear)),
      size: Effect.suspend(() => (dead ? died("size") : inner.size))
    })
    const scope = yield* Scope.make()
    const tier = yield* KeyValueStoreTier.make().pipe(
      Effect.provideService(KeyValueStore.KeyValueStore, store),
      Scope.extend(scope)
    )
    return {
      tier,
      crash: (cut: number) => {
        armed = cut
        dies = true
      },
      diskFull: (cut: number) => {
        armed = cut
        dies = false
      },
      died: () => dead,
      close: Scope.close(scope, Exit.void)
    }
  })

const entry = (value: string) => Entry.make({ value, now: Date.now(), ttlMs: 3_600_000 })
const keys = Array.from({ length: 64 }, (_, i) => `user:${i}`)

/** The keys a process started next on `directory` still answers after its clear. */
const answeredAfterClear = (directory: string) =>
  Effect.gen(function* () {
    const next = yield* process_(directory)
    yield* next.tier.clear
    const answered = yield* Effect.filter(keys, (key) =>
      Effect.map(next.tier.get(key), (found) => found._tag === "Some")
    )
    yield* next.close
    return answered
  })

describe("KeyValueStoreTier index after a crash", () => {
  for (const cut of [0, 7]) {
    it.scoped(
      `a record of the index cut at ${cut} by a crash: after a restart, clear reaches every entry`,
      () =>
        Effect.gen(function* () {
          const fs = yield* FileSystem.FileSystem
          const directory = yield* fs.makeTempDirectoryScoped({ prefix: "tiercache-kv-" })
          const first = yield* process_(directory)
          for (const key of keys) yield* first.tier.set(key, entry(key))
          // A new key: its shard's record is being written when the process dies.
          first.crash(cut)
          yield* Effect.exit(first.tier.set("user:last", entry("last")))
          expect(first.died()).toBe(true)
          yield* first.close

          // Restarted, it dies again writing the same shard (the same key, not stored yet).
          const second = yield* process_(directory)
          second.crash(cut)
          yield* Effect.exit(second.tier.set("user:last", entry("last")))
          expect(second.died()).toBe(true)
          yield* second.close

          expect(yield* answeredAfterClear(directory), "entries answered after clear").toEqual([])
        }).pipe(Effect.provide(NodeEnv))
    )

    it.scoped(
      `a disk full while a record of the index is written, then a crash: clear still reaches every entry`,
      () =>
        Effect.gen(function* () {
          const fs = yield* FileSystem.FileSystem
          const directory = yield* fs.makeTempDirectoryScoped({ prefix: "tiercache-kv-" })
          const first = yield* process_(directory)
          for (const key of keys) yield* first.tier.set(key, entry(key))
          // The disk fills up while the shard of a new key is written: the set fails, the
          // process goes on; its next write of that shard (the same key, set again) is cut short
          // by a crash.
          first.diskFull(cut)
          expect((yield* Effect.exit(first.tier.set("user:last", entry("last"))))._tag).toBe("Failure")
          expect(first.died()).toBe(false)
          first.crash(cut)
          yield* Effect.exit(first.tier.set("user:last", entry("last")))
          expect(first.died()).toBe(true)
          yield* first.close

          expect(yield* answeredAfterClear(directory), "entries answered after clear").toEqual([])
        }).pipe(Effect.provide(NodeEnv))
    )
  }
})
