/**
 * RedisTier's writes and removals: SET PX at the entry's `staleUntil` (on the large-value
 * connection for a large value; `setThen` and `setNow` hand a small one to the command
 * connection before the bus message that follows), `setMany` (its small writes pipelined by
 * pipelinedWrites.ts), the removals of keys (tierRemovals.ts), and removal by pattern and
 * `clear` (patternRemoval.ts).
 *
 * Order: the writes and removals of a key land in the order they were called, whichever
 * connection they take. A write or removal of a key whose large write is still in flight waits
 * for it to land before it is sent (keyOrder.ts), so a small `set` or a `remove` is never
 * overwritten by a large value written before it; a removal by pattern or `clear` first waits
 * for every large write in flight. A wait that outlasts the large write's bounds fails unsent.
 * Within one `setMany`, a key given twice keeps its last entry (as `MSET` does). On the command
 * connection, `setMany`'s pipeline is not sent ahead of the commands waiting in the driver's
 * auto-pipeline (pipelinedWrites.ts).
 */
import { CacheError, Entry, type Tier } from "@tiercache/core"
import { type Clock, Effect } from "effect"
import type { Redis } from "ioredis"
import { forEachAtOnce } from "./allAtOnce.js"
import { sender } from "./corkedSend.js"
import type { Landing } from "./keyOrder.js"
import * as KeyOrder from "./keyOrder.js"
import type { LargeValues } from "./largeValues.js"
import * as PatternRemoval from "./patternRemoval.js"
import type { Write } from "./pipelinedWrites.js"
import * as PipelinedWrites from "./pipelinedWrites.js"
import { pxOf } from "./px.js"
import * as TierRemovals from "./tierRemovals.js"
import { failureOf, type Runner, sendThen } from "./tierRunner.js"

type TierError = CacheError.TierError

/** What the writes of one tier are built on. */
export interface Deps {
  /** The command connection's client. */
  readonly client: Redis
  readonly large: LargeValues
  /** The tier's key prefix. */
  readonly prefix: string
  /** Keys asked for per SCAN step when removing by pattern. */
  readonly scanCount: number
  readonly clock: Clock.Clock
  readonly runner: Runner
}

/** The writes of a batch with only the last one of each key kept. */
const lastPerKey = (writes: ReadonlyArray<Write>): ReadonlyArray<Write> => {
  const last = new Map<string, Write>()
  for (const w of writes) last.set(w.key, w)
  return [...last.values()]
}

/** For writes that need not tell when their commands land. */
const noLanding: Landing = () => {}

/** Builds the writes and removals of a tier. */
export const make = ({
  client,
  large,
  prefix,
  scanCount,
  clock,
  runner
}: Deps): Pick<Tier.Tier.Service, "set" | "setMany" | "remove" | "removeMatching" | "clear"> & {
  readonly setThen: NonNullable<Tier.Tier.Service["setThen"]>
  readonly removeThen: NonNullable<Tier.Tier.Service["removeThen"]>
  readonly removeNow: NonNullable<Tier.Tier.Service["removeNow"]>
  readonly setNow: NonNullable<Tier.Tier.Service["setNow"]>
  /** Runs another write of `fulls` (recovery's conditional write) in the keys' order (keyOrder.ts). */
  readonly inOrder: KeyOrder.KeyOrder["after"]
} => {
  const { fail, run } = runner
  const send = sender(client)
  const order = KeyOrder.make(runner.timeoutMs)
  /** A write not sent: an earlier large write of its key has not landed in time (keyOrder.ts). */
  const notLanded = (operation: string) =>
    Effect.fail(fail(operation, "an earlier large write of the key has not landed"))
  const setPx = (full: string, value: string, px: number): Promise<unknown> =>
    send("set", [full, value, "PX", String(px)], () => client.set(full, value, "PX", px))
  const unlinkOne = (full: string): Promise<unknown> => send("unlink", [full], () => client.unlink(full))

  /** Milliseconds from now until `staleUntil` (a write's PX, counted when it is sent). */
  const pxFromNow = (staleUntil: number): number => pxOf(staleUntil, clock.unsafeCurrentTimeMillis())

  /**
   * SET PX of a large value on the large-value connection, its reply told to `landing`. It may
   * have waited for an earlier large write of its key (keyOrder.ts): an entry gone meanwhile is
   * unlinked instead. Its PX is counted by `large.write` as the SET is sent (after the marker
   * and the large-value connection's open), so that neither the wait nor those keep it in Redis
   * past `staleUntil`.
   */
  const writeLarge = (
    operation: string,
    full: string,
    value: string,
    staleUntil: number,
    landing: Landing
  ): Effect.Effect<void, TierError> =>
    Effect.suspend(() =>
      pxFromNow(staleUntil) > 0
        ? Effect.mapError(large.write(full, value, staleUntil, landing), (cause) => fail(operation, cause))
        : Effect.asVoid(run(operation, () => unlinkOne(full)))
    )

  /** SET PX of a small value, or UNLINK when `value` is undefined (the entry is gone already). */
  const sendSmall = (full: string, value: string | undefined, px: number): Promise<unknown> =>
    value === undefined ? unlinkOne(full) : setPx(full, value, px)

  /**
   * `sendSmall` of a write that waited for an earlier large write of its key (keyOrder.ts): its
   * PX counted now, not at the call, so that the wait does not keep the entry in Redis past its
   * `staleUntil`; an entry gone meanwhile is unlinked.
   */
  const sendSmallAfterWait = (
    full: string,
    value: string | undefined,
    staleUntil: number
  ): Promise<unknown> => {
    const px = pxFromNow(staleUntil)
    return sendSmall(full, px > 0 ? value : undefined, px)
  }

  /**
   * What a `set` of `entry` sends: its full key, PX and encoded value (undefined when the entry
   * is gone already: the key is unlinked instead), or the failure to encode it.
   */
  const prepare = (
    key: string,
    entry: Entry.Entry
  ): { readonly full: string; readonly px: number; readonly value: string | undefined } | TierError => {
    const full = prefix + key
    const px = pxFromNow(entry.staleUntil)
    if (!(px > 0)) return { full, px, value: undefined }
    try {
      return { full, px, value: Entry.serialize(entry) }
    } catch (cause) {
      return fail("set", cause)
    }
  }

  /**
   * A small SET PX (an UNLINK when `value` is undefined) handed to the command connection now:
   * answers its failure once it is answered (undefined when it succeeded).
   */
  const sendSmallNow = (
    full: string,
    value: string | undefined,
    px: number
  ): Promise<TierError | undefined> => runner.now("set", () => sendSmall(full, value, px))

  const writeSmall = PipelinedWrites.make({ client, clock, runner })

  const encode = (operation: string, entry: Entry.Entry): Effect.Effect<string, TierError> =>
    Effect.try({ try: () => Entry.serialize(entry), catch: (cause) => fail(operation, cause) })

  const byPattern = PatternRemoval.make({ client, large, prefix, scanCount, runner })

  const removals = TierRemovals.make({ client, prefix, order, runner, send, notLanded: notLanded("remove") })

  return {
    inOrder: order.after,
    // No span on a write (nor on a read): per write it cost more than the rest of this function.
    set: (key, entry) =>
      Effect.suspend(() => {
        const w = prepare(key, entry)
        if (w instanceof CacheError.TierError) return Effect.fail(w)
        const { full, px, value } = w
        if (value !== undefined && large.isLarge(value)) {
          return order.after(
            [full],
            (landing) => writeLarge("set", full, value, entry.staleUntil, landing),
            notLanded("set")
          )
        }
        return order.waits(full)
          ? order.after(
              [full],
              () => Effect.asVoid(run("set", () => sendSmallAfterWait(full, value, entry.staleUntil))),
              notLanded("set")
            )
          : Effect.asVoid(run("set", () => sendSmall(full, value, px)))
      }),

    /**
     * `set`, then `then` without waiting for the reply in between: a SET (or the UNLINK of an
     * entry already gone) is handed to the command connection first, so a PUBLISH that `then`
     * sends on it follows the write (corked, both leave in one script call: corkedSend.ts). A
     * large value goes over the large-value connection: `then` waits for its reply. A write that
     * must wait for an earlier large write of its key (keyOrder.ts) sends, and then runs `then`,
     * once that one has landed.
     */
    setThen: <A>(key: string, entry: Entry.Entry, then: Effect.Effect<A>) =>
      Effect.suspend((): Effect.Effect<readonly [TierError | undefined, A]> => {
        const w = prepare(key, entry)
        if (w instanceof CacheError.TierError) return Effect.map(then, (a) => [w, a] as const)
        const { full, px, value } = w
        if (value !== undefined && large.isLarge(value)) {
          return Effect.flatMap(
            failureOf(
              order.after(
                [full],
                (landing) => writeLarge("set", full, value, entry.staleUntil, landing),
                notLanded("set")
              )
            ),
            (error) => Effect.map(then, (a) => [error, a] as const)
          )
        }
        return order.waits(full)
          ? order.after(
              [full],
              () =>
                sendThen(
                  () => runner.now("set", () => sendSmallAfterWait(full, value, entry.staleUntil)),
                  then
                ),
              Effect.suspend(() => {
                const error = fail("set", "an earlier large write of the key has not landed")
                return Effect.map(then, (a) => [error, a] as const)
              })
            )
          : sendThen(() => sendSmallNow(full, value, px), then)
      }),

    /**
     * `setThen`'s write of a small value started at once (the cache's one-step write): the SET
     * (or UNLINK) is on the command connection when it returns. Anything else is not started
     * (false): a value that cannot be serialized, a large one, or a write that must wait for an
     * earlier large write of its key.
     */
    setNow: (key, entry, done) => {
      const w = prepare(key, entry)
      if (w instanceof CacheError.TierError) return false
      const { full, px, value } = w
      if ((value !== undefined && large.isLarge(value)) || order.waits(full)) return false
      sendSmallNow(full, value, px).then(done)
      return true
    },

    setMany: (entries) =>
      Effect.gen(function* () {
        if (entries.length === 0) return
        const now = clock.unsafeCurrentTimeMillis()
        const encoded = yield* Effect.forEach(entries, ([key, entry]): Effect.Effect<Write, TierError> => {
          const { staleUntil } = entry
          return pxOf(staleUntil, now) > 0
            ? Effect.map(encode("setMany", entry), (value) => ({ key: prefix + key, value, staleUntil }))
            : Effect.succeed({ key: prefix + key, value: undefined, staleUntil })
        })
        // The small writes and the large ones go out at once on two connections: were a key
        // both, the earlier could land last. Only its last entry is written, as MSET would.
        const writes = encoded.some((w) => w.value !== undefined && large.isLarge(w.value))
          ? lastPerKey(encoded)
          : encoded
        const small = writes.filter((w) => w.value === undefined || !large.isLarge(w.value))
        const big = writes.filter((w) => w.value !== undefined && large.isLarge(w.value))
        const all = (landing: Landing) =>
          Effect.asVoid(
            forEachAtOnce(
              [
                writeSmall(small),
                Effect.forEach(big, (w) => writeLarge("setMany", w.key, w.value!, w.staleUntil, landing), {
                  discard: true
                })
              ],
              (write) => write
            )
          )
        // Every key waits when one must (the pipeline is one); else only the large writes are
        // registered, for the writes issued after this one.
        if (writes.some((w) => order.waits(w.key))) {
          return yield* order.after(
            writes.map((w) => w.key),
            all,
            notLanded("setMany")
          )
        }
        if (big.length > 0) {
          return yield* order.after(
            big.map((w) => w.key),
            all,
            notLanded("setMany")
          )
        }
        yield* all(noLanding)
      }),

    remove: removals.remove,
    removeThen: removals.removeThen,
    removeNow: removals.removeNow,

    // A removal by pattern waits for the large writes in flight (of any key: it is rare), so
    // that none lands after it.
    removeMatching: (glob) =>
      Effect.zipRight(order.settled(notLanded("removeMatching")), byPattern.removeMatching(glob)),

    clear: Effect.zipRight(order.settled(notLanded("clear")), byPattern.clear)
  }
}
