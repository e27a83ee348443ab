/**
 * The order of one tier's writes of a key across its two connections. A small write goes out on
 * the command connection at once; a large one on the large-value connection, after its marker's
 * round trip (largeValues.ts): a small write or a removal of the same key issued later would
 * land first and be overwritten by it. So a large write is registered here, by full key, until
 * it has landed, and every write or removal of a registered key waits for it (and is registered
 * itself while it waits, so that what comes after it waits too): the writes of a key land in the
 * order they were issued.
 *
 * A wait is bounded: a write waits for those before it while they run (each bounded by its own
 * timeouts), then for their landing at most a command's timeout more (the PING behind a
 * timed-out large write, largeValues.ts). A write whose earlier writes have not landed by then
 * runs `stuck` instead (a failure, as a timed-out command does), never sent, so it cannot land
 * before them. With Redis paused, or its host gone and the connection still up, that PING is
 * never answered: the writes of the key (uninterruptible in a cache) waited for good.
 *
 * Cost: while no large write is in flight nothing is registered, and a small write pays only
 * `waits`: one `Map.size` check. While one is, a write of another key pays one `Map.has`; a
 * large write pays a promise and a registration (nothing beside its own transfer).
 */
import { Effect } from "effect"

/**
 * Milliseconds on a clock that only goes forward: the wall clock (Date.now) steps with NTP or a
 * restored VM, and a step back of an hour made a write wait an hour behind a large write that
 * did not land (a step forward gave up a healthy one).
 */
const monotonic = (): number => performance.now()

/**
 * The tails the deadlines of waits walked, in every KeyOrder (counted for tests that bound it: a
 * write that gave up must not stand for a chain of every give-up before it, 24ca225). Counted in
 * a wait's deadline only, never on a write that does not wait.
 */
export const work = { tailsWalked: 0 }

/**
 * Tells the write under way that a command it sent lands when `sent` settles, and Redis answers
 * it within `withinMs` (its own timeout, when longer than the command timeout) if it answers.
 */
export type Landing = (sent: Promise<unknown>, withinMs?: number) => void

/** The order of the writes of one tier. */
export interface KeyOrder {
  /** Whether a write of `full` must wait for an earlier one (false at once while none is registered). */
  readonly waits: (full: string) => boolean
  /** Whether a write of any of `fulls` must wait for an earlier one. */
  readonly waitsAny: (fulls: ReadonlyArray<string>) => boolean
  /**
   * Runs `write` once every earlier registered write of `fulls` has landed, keeping `fulls`
   * registered until `write` has ended and every command it told `landing` of has settled
   * (a command still on its way when `write` is interrupted lands later all the same). The
   * registration is one atomic step, made when the effect starts. Runs `stuck` instead when the
   * earlier writes have not landed in time (see above).
   */
  readonly after: <A, E>(
    fulls: ReadonlyArray<string>,
    write: (landing: Landing) => Effect.Effect<A, E>,
    stuck: Effect.Effect<A, E>
  ) => Effect.Effect<A, E>
  /**
   * Waits until every write registered now has landed (before removing by pattern), or runs
   * `stuck` when they have not in time.
   */
  readonly settled: <E>(stuck: Effect.Effect<void, E>) => Effect.Effect<void, E>
}

/** The writes of one key in flight: settles once the last one registered has landed, never fails. */
interface Tail {
  readonly landed: Promise<void>
  /** Landed (released). */
  done: boolean
  /** By when (monotonic ms) it should have landed: Infinity while its write runs. */
  deadline: number
  /** A write that ended without sending anything lands with these, by their deadlines. */
  forward: ReadonlyArray<Tail> | undefined
}

/**
 * Builds the order of one tier's writes; `commandMs`: the command timeout, how long a write's
 * commands may take to land once the write has ended.
 */
export const make = (commandMs: number): KeyOrder => {
  const tails = new Map<string, Tail>()

  const waits = (full: string): boolean => tails.size > 0 && tails.has(full)

  const waitsAny = (fulls: ReadonlyArray<string>): boolean => {
    if (tails.size === 0) return false
    for (const full of fulls) if (tails.has(full)) return true
    return false
  }

  /** The last deadline of `tails`, and of the tails those that sent nothing stand for. */
  const deadlineOf = (tails: ReadonlyArray<Tail>): number => {
    let deadline = 0
    const stack = [...tails]
    const seen = new Set<Tail>()
    while (stack.length > 0) {
      const tail = stack.pop()!
      work.tailsWalked++
      if (tail.done || seen.has(tail)) continue
      seen.add(tail)
      deadline = Math.max(deadline, tail.deadline)
      if (tail.forward !== undefined) stack.push(...tail.forward)
    }
    return deadline
  }

  /**
   * Waits for `before` to land: true once they have, false once their deadline has passed
   * (looked at again every command timeout while one of them still runs).
   */
  const waitFor = (before: ReadonlyArray<Tail>): Effect.Effect<boolean> => {
    if (before.length === 0) return Effect.succeed(true)
    return Effect.async<boolean>((resume) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      let last: ReturnType<typeof setImmediate> | undefined
      let answered = false
      const stop = () => {
        clearTimeout(timer)
        if (last !== undefined) clearImmediate(last)
      }
      const answer = (landed: boolean) => {
        if (answered) return
        answered = true
        stop()
        resume(Effect.succeed(landed))
      }
      const arm = () => {
        const left = deadlineOf(before) - monotonic()
        // Past the deadline: once the landings already settled have been told (a registration
        // ends a few promise steps after its write did).
        if (left <= 0) last = setImmediate(() => answer(false))
        else timer = setTimeout(arm, Math.min(left, commandMs))
      }
      arm()
      const landed = before.length === 1 ? before[0]!.landed : Promise.all(before.map((t) => t.landed))
      landed.then(() => answer(true))
      return Effect.sync(stop)
    })
  }

  interface Registration {
    readonly tail: Tail
    readonly before: ReadonlyArray<Tail>
    readonly release: () => void
    landed: Array<Promise<unknown>> | undefined
    /** By when (monotonic ms) the commands it sent should have landed. */
    landedBy: number
    /** Whether its write ran (those before it had landed), rather than `stuck`. */
    ran: boolean
  }

  const register = (fulls: ReadonlyArray<string>): Registration => {
    const earlier = new Set<Tail>()
    let resolve!: () => void
    const tail: Tail = {
      landed: new Promise<void>((r) => {
        resolve = r
      }),
      done: false,
      deadline: Number.POSITIVE_INFINITY,
      forward: undefined
    }
    for (const full of fulls) {
      const last = tails.get(full)
      // A key named twice finds its own tail the second time: never waited for (it lands only
      // once this write has run).
      if (last !== undefined && last !== tail) earlier.add(last)
      tails.set(full, tail)
    }
    const before = [...earlier]
    const release = () => {
      for (const full of fulls) if (tails.get(full) === tail) tails.delete(full)
      tail.done = true
      tail.forward = undefined
      resolve()
    }
    return { tail, before, release, landed: undefined, landedBy: 0, ran: false }
  }

  /**
   * Ends a registration: once the writes before it and its own commands have all landed (its
   * tail then stands for all of them, so that a write waiting for it waits for them too, even
   * when this one never sent anything).
   */
  const end = (registration: Registration): void => {
    const { tail, before, landed, release } = registration
    if (landed === undefined && before.length === 0) {
      release()
      return
    }
    // Ran (after those before it had landed): by the time its commands were given, and a
    // command's timeout from now at the latest (a PING behind a command that timed out). Not
    // run (stuck, or interrupted while it waited): with those before it.
    if (!registration.ran) {
      tail.deadline = monotonic()
      // The tails those before it stand for, not a chain of every write that gave up since.
      tail.forward = before.flatMap((t) => t.forward ?? [t]).filter((t) => !t.done)
    } else {
      tail.deadline = Math.max(monotonic() + commandMs, registration.landedBy)
    }
    // A command's failure is its landing too (a tail never fails): a large write hands over a
    // landing that a timeout does not settle early (largeValues.ts landedOf).
    Promise.allSettled([...before.map((t) => t.landed), ...(landed ?? [])]).then(release)
  }

  const after = <A, E>(
    fulls: ReadonlyArray<string>,
    write: (landing: Landing) => Effect.Effect<A, E>,
    stuck: Effect.Effect<A, E>
  ): Effect.Effect<A, E> =>
    Effect.acquireUseRelease(
      Effect.sync(() => register(fulls)),
      (registration) =>
        Effect.flatMap(waitFor(registration.before), (landed) => {
          if (!landed) return stuck
          registration.ran = true
          return write((sent, withinMs = 0) => {
            if (registration.landed === undefined) registration.landed = [sent]
            else registration.landed.push(sent)
            registration.landedBy = Math.max(registration.landedBy, monotonic() + withinMs + commandMs)
          })
        }),
      (registration) => Effect.sync(() => end(registration))
    )

  const settled = <E>(stuck: Effect.Effect<void, E>): Effect.Effect<void, E> =>
    Effect.suspend(() =>
      tails.size === 0
        ? Effect.void
        : Effect.flatMap(waitFor([...new Set(tails.values())]), (landed) => (landed ? Effect.void : stuck))
    )

  return { waits, waitsAny, after, settled }
}
