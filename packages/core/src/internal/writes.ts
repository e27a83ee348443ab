/**
 * The writes: `set` and `update` from outside, and the store of a flight's computed value
 * (`storeComputed`). Each writes every tier, then sends a bus message, with its key marked
 * changing (changes.ts); when the one lower tier and the bus share an ordered stream, the write
 * and its message go together. A write from outside first waits for a computed value of its key
 * still being written below L1 (pendingStores.ts).
 */
import { Effect } from "effect"
import { CacheInputError, type TierError } from "../CacheError.js"
import type * as Entry from "../Entry.js"
import type { InvalidationMessage } from "../InvalidationMessage.js"
import type { TypedWriteOptions } from "../TieredCache.js"
import { bracketSync } from "./bracket.js"
import { entryOf, resolveWrite } from "./callOptions.js"
import { type Changes, type Deps, onBusStream, thenSettle, type WriteError } from "./changes.js"
import type { AnySchema } from "./codec.js"
import type { L1Op } from "./everyTier.js"
import type { Slot } from "./fastPath.js"
import { checkKey, decodeEncoded, encodeValue, schemaOf } from "./input.js"
import * as OneStepWrite from "./oneStepWrite.js"
import type { PendingStore } from "./pendingStores.js"

const discarded: Effect.Effect<"discarded"> = Effect.succeed("discarded")

/** Builds the writes. */
export const make = (deps: Deps, changes: Changes) => {
  const { access, versions, registry, instanceId, recovery, now, lateUpdates } = deps
  const { changing, failIfAllFailed, pending } = changes
  // A write and its bus message sent together when the lower tier shares the bus's stream.
  const ordered = onBusStream(deps, access.storeThen)
  const removed = (key: string): InvalidationMessage => ({ type: "Remove", key, origin: instanceId })
  /**
   * Notes a write of `key` at its end, while the key is still marked changing, in lateUpdates.ts's
   * record of this instance's writes: another instance's Update created before then may have
   * landed in the lower tiers before this write (two instances writing a key at once), and
   * arriving after it, it only drops the copy L1 holds instead of serving its value here over the
   * lower tiers' newer one.
   */
  const wrote = (key: string) => lateUpdates.wrote(key, now())
  const noteWrote = (key: string) => Effect.sync(() => wrote(key))
  // The usual shape of an ordered write, in one Effect step when it can be.
  const oneStep = ordered === undefined ? undefined : OneStepWrite.make(deps, changes, deps.sendNow)?.write

  /** Stores the entry in L1 (at once with the fast path), keeping its decoded value for `schema`. */
  const storeL1 =
    (key: string, entry: Entry.Entry, schema: AnySchema | undefined, decoded: unknown): L1Op =>
    () => {
      const keep = (slot: Slot | undefined) => {
        if (slot !== undefined && schema !== undefined) slot.memoizeTyped(schema, decoded)
      }
      const storeNow = access.storeL1Now
      if (storeNow === undefined) return Effect.map(access.storeL1(key, entry), keep)
      keep(storeNow(key, entry))
      return undefined
    }

  /**
   * `body`, after the computed values of `key` still being written below L1 (marked, so that
   * they are removed again once landed): a write from outside must land after them.
   */
  const afterPending = <A, E>(key: string, body: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    pending.has(key)
      ? Effect.zipRight(
          pending.settle((store) => store.key === key),
          body
        )
      : body

  const write = (
    key: string,
    value: unknown,
    opts: TypedWriteOptions<unknown, unknown> | undefined,
    broadcastValue: boolean
  ): Effect.Effect<void, WriteError> =>
    Effect.suspend((): Effect.Effect<void, WriteError> => {
      const badKey = checkKey(key)
      if (badKey) return Effect.fail(badKey)
      const resolved = resolveWrite(deps.defaults, opts)
      if (resolved instanceof CacheInputError) return Effect.fail(resolved)
      const schema = schemaOf(opts)
      if (schema instanceof CacheInputError) return Effect.fail(schema)
      const encoded = encodeValue(value, schema)
      if (encoded instanceof CacheInputError) return Effect.fail(encoded)
      // Typed, what the schema decodes from the stored form (what every tier and instance reads),
      // or the error of a value it would never read back (a schema that does not round-trip).
      const decoded = schema === undefined ? undefined : decodeEncoded(encoded.value, schema)
      if (decoded instanceof CacheInputError) return Effect.fail(decoded)
      const entry = entryOf(encoded.value, now(), resolved)
      // A write from outside supersedes the computation under way.
      registry.forget(key)
      const message: InvalidationMessage = broadcastValue
        ? {
            type: "Update",
            key,
            value: entry.value,
            ttl_secs: Math.ceil(resolved.ttlMs / 1000),
            ttl_ms: resolved.ttlMs,
            grace_ms: resolved.graceMs,
            tags: resolved.tags,
            created_ms: entry.createdAt,
            origin: instanceId
          }
        : removed(key)
      // L1 keeps, for a typed write, the value decoded from the stored form, as every other tier
      // and instance reads it (never the value given, which may hold more than the schema keeps).
      const l1 = storeL1(key, entry, schema, decoded)
      if (ordered !== undefined) {
        const inSteps = () =>
          changing(
            [key],
            Effect.ensuring(
              afterPending(key, ordered.run(l1, key, entry, deps.send(message))),
              noteWrote(key)
            )
          ).pipe(
            Effect.flatMap(([failures, delivered]) =>
              thenSettle(
                failIfAllFailed(key, "set", failures),
                recovery.keptKey(key, entry, broadcastValue, failures.length > 0, delivered)
              )
            )
          )
        return oneStep === undefined ? inSteps() : oneStep(key, entry, l1, message, broadcastValue, inSteps)
      }
      return changing(
        [key],
        Effect.ensuring(
          afterPending(
            key,
            access.onEveryTier(l1, (tier) => tier.set(key, entry))
          ),
          noteWrote(key)
        )
      ).pipe(
        Effect.flatMap((failures) =>
          thenSettle(
            failIfAllFailed(key, "set", failures),
            recovery.settleKey(key, entry, broadcastValue, failures.length > 0, message)
          )
        )
      )
    })

  /**
   * Stores a flight's computed entry unless `key` changed since `since`, then tells the other
   * instances (`Remove`: their L1 copy, if any, is older).
   */
  const storeComputed = (
    key: string,
    entry: Entry.Entry,
    schema: AnySchema | undefined,
    decoded: unknown,
    since: number,
    afterL1: () => void
  ): Effect.Effect<ReadonlyArray<TierError> | "discarded"> =>
    Effect.suspend((): Effect.Effect<ReadonlyArray<TierError> | "discarded"> => {
      let store: PendingStore | undefined
      const l1 = storeL1(key, entry, schema, decoded)
      // An invalidation that stopped waiting for this write (a slow tier) left it behind.
      const cleared = (failures: ReadonlyArray<TierError>) =>
        store!.invalidated
          ? Effect.as(
              access.onEveryTier(
                () => access.removeL1([key]),
                (tier) => tier.remove([key])
              ),
              failures
            )
          : Effect.succeed(failures)
      const stored =
        ordered === undefined
          ? Effect.flatMap(
              access.onEveryTier(l1, (tier) => tier.set(key, entry), afterL1),
              cleared
            )
          : Effect.flatMap(ordered.run(l1, key, entry, deps.send(removed(key)), afterL1), ([failures]) =>
              cleared(failures)
            )
      // Checked and marked in one step (no change of the key can begin in between), and marked
      // changing until the write (and a removal after it) is done.
      const done = bracketSync(
        () => {
          if (!versions.current(key, since)) return false
          store = pending.begin(key, entry.tags)
          versions.changing(key)
          return true
        },
        (current): Effect.Effect<ReadonlyArray<TierError> | "discarded"> => (current ? stored : discarded),
        (current) => {
          if (!current) return
          // A write of this instance's as a set is (see `wrote`).
          wrote(key)
          versions.changed(key)
          pending.finish(store!)
        }
      )
      // Sent with the write already, unless a removal followed it (known once the write is done).
      return Effect.flatMap(done, (failures) =>
        failures === "discarded" || (ordered !== undefined && !store!.invalidated)
          ? Effect.succeed(failures)
          : Effect.as(deps.send(removed(key)), failures)
      )
    })

  return {
    storeComputed,
    set: (key: string, value: unknown, opts?: TypedWriteOptions<unknown, unknown>) =>
      write(key, value, opts, false),
    update: (key: string, value: unknown, opts?: TypedWriteOptions<unknown, unknown>) =>
      write(key, value, opts, true)
  }
}

/** The writes of one cache. */
export type Writes = ReturnType<typeof make>
