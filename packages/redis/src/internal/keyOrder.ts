/**
 * The order of one tier's writes of a key across its two connections. A small write goes out on
 * the command connection at once; a large one on the large-value connection, after its marker's
 * round trip (largeValues.ts): a small write or a removal of the same key issued later would
 * land first and be overwritten by it. So a large write is registered here, by full key, until
 * it has landed, and every write or removal of a registered key waits for it (and is registered
 * itself while it waits, so that what comes after it waits too): the writes of a key land in the
 * order they were issued.
 *
 * Cost: while no large write is in flight nothing is registered, and a small write pays only
 * `waits`: one `Map.size` check. While one is, a write of another key pays one `Map.has`; a
 * large write pays a promise and a registration (nothing beside its own transfer).
 */
import { Effect } from "effect"

/** Tells the write under way that a command it sent lands when `sent` settles. */
export type Landing = (sent: Promise<unknown>) => void

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
   * registration is one atomic step, made when the effect starts.
   */
  readonly after: <A, E>(
    fulls: ReadonlyArray<string>,
    write: (landing: Landing) => Effect.Effect<A, E>
  ) => Effect.Effect<A, E>
  /** Waits until every write registered now has landed (before removing by pattern). */
  readonly settled: Effect.Effect<void>
}

/** The writes of one key in flight: settles once the last one registered has landed, never fails. */
type Tail = Promise<void>

/** Builds the order of one tier's writes. */
export const make = (): KeyOrder => {
  const tails = new Map<string, Tail>()

  const waits = (full: string): boolean => tails.size > 0 && tails.has(full)

  const waitsAny = (fulls: ReadonlyArray<string>): boolean => {
    if (tails.size === 0) return false
    for (const full of fulls) if (tails.has(full)) return true
    return false
  }

  const waitFor = (before: ReadonlyArray<Tail>): Effect.Effect<void> =>
    before.length === 0
      ? Effect.void
      : before.length === 1
        ? Effect.promise(() => before[0]!)
        : Effect.asVoid(Effect.promise(() => Promise.all(before)))

  interface Registration {
    readonly before: ReadonlyArray<Tail>
    readonly release: () => void
    landed: Array<Promise<unknown>> | undefined
  }

  const register = (fulls: ReadonlyArray<string>): Registration => {
    const earlier = new Set<Tail>()
    let resolve!: () => void
    const tail: Tail = new Promise<void>((r) => {
      resolve = r
    })
    for (const full of fulls) {
      const last = tails.get(full)
      if (last !== undefined) earlier.add(last)
      tails.set(full, tail)
    }
    const before = [...earlier]
    const release = () => {
      for (const full of fulls) if (tails.get(full) === tail) tails.delete(full)
      resolve()
    }
    return { before, release, landed: undefined }
  }

  /**
   * Ends a registration: once the writes before it and its own commands have all landed (its
   * tail then stands for all of them, so that a write waiting for it waits for them too, even
   * when this one never sent anything).
   */
  const end = (registration: Registration): void => {
    const { before, landed, release } = registration
    if (landed === undefined && before.length === 0) {
      release()
      return
    }
    // A command's failure is its landing too (a tail never fails): a large write hands over a
    // landing that a timeout does not settle early (largeValues.ts landedOf).
    Promise.allSettled([...before, ...(landed ?? [])]).then(release)
  }

  const after = <A, E>(
    fulls: ReadonlyArray<string>,
    write: (landing: Landing) => Effect.Effect<A, E>
  ): Effect.Effect<A, E> =>
    Effect.acquireUseRelease(
      Effect.sync(() => register(fulls)),
      (registration) =>
        Effect.zipRight(
          waitFor(registration.before),
          Effect.suspend(() =>
            write((sent) => {
              if (registration.landed === undefined) registration.landed = [sent]
              else registration.landed.push(sent)
            })
          )
        ),
      (registration) => Effect.sync(() => end(registration))
    )

  const settled: Effect.Effect<void> = Effect.suspend(() =>
    tails.size === 0 ? Effect.void : waitFor([...new Set(tails.values())])
  )

  return { waits, waitsAny, after, settled }
}
