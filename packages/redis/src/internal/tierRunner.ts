/**
 * How RedisTier sends its commands: one command, or a transaction or pipeline, as an Effect
 * whose every failure is a {@link CacheError.TierError} of the tier (with a reason for people
 * and the driver's error, sanitized, as its cause).
 */
import { CacheError } from "@tiercache/core"
import { Duration, Effect } from "effect"
import type { ChainableCommander } from "ioredis"
import { TIMED_OUT } from "./deadlines.js"
import { describe } from "./describe.js"
import { sanitize } from "./sanitize.js"

type TierError = CacheError.TierError
const { TierError } = CacheError

/** The commands of one tier. */
export interface Runner {
  /** The error of `operation` failing with `cause`. */
  readonly fail: (operation: string, cause: unknown) => TierError
  /** The command timeout (ms). */
  readonly timeoutMs: number
  /**
   * One command. The connection bounds it by the command timeout itself (deadlines.ts; ioredis
   * fails it at once while disconnected), so no timer of our own runs here: an Effect-level timeout forks a fiber
   * per call, which cost more than the round trip on the L2 hit path.
   */
  readonly run: <A>(operation: string, send: () => Promise<A>) => Effect.Effect<A, TierError>
  /**
   * One command handed to the connection now, outside Effect (`setNow`, `removeNow`,
   * `sendThen`): answers its failure once it is answered (undefined when it succeeded). A driver
   * that throws is a failure too.
   */
  readonly now: (operation: string, send: () => Promise<unknown>) => Promise<TierError | undefined>
  /** Runs a transaction or pipeline, bounded here as a whole; fails with the first command error. */
  readonly exec: (
    operation: string,
    batch: () => ChainableCommander
  ) => Effect.Effect<Array<unknown>, TierError>
}

/** As {@link describe}; ioredis's own command timeout is said in the tier's words. */
const reasonOf = (cause: unknown): string => {
  const reason = describe(cause)
  return reason === TIMED_OUT ? "no answer within the command timeout" : reason
}

/** The commands of the tier `name`, batches bounded by `timeout` (the connection's command timeout). */
export const make = (name: string, timeout: Duration.Duration): Runner => {
  const timeoutReason = `no answer within ${Duration.format(timeout)}`
  const timeoutMs = Duration.toMillis(timeout)

  const fail = (operation: string, cause: unknown) =>
    new TierError({ tier: name, operation, reason: reasonOf(cause), cause: sanitize(cause) })

  const run = <A>(operation: string, send: () => Promise<A>): Effect.Effect<A, TierError> =>
    Effect.tryPromise({ try: send, catch: (cause) => fail(operation, cause) })

  /**
   * A transaction or pipeline, also bounded here as a whole, by a Node timer on its promise: no
   * fiber of the caller's (a write runs uninterruptible to its end, and a race's fiber would
   * inherit that, so that its timeout could not end it). The timer fails it after the I/O of the
   * turn it fires in (`setImmediate`; Node runs timers before it reads sockets), as the
   * connection does its commands (deadlines.ts): replies that came while the event loop was
   * busy past the bound settle it first. Failed in the timer's callback, a pipeline Redis had
   * answered at once failed when the event loop was held for longer than the bound.
   */
  const runBatch = <A>(operation: string, send: () => Promise<A>): Effect.Effect<A, TierError> =>
    Effect.async<A, TierError>((resume) => {
      let late: ReturnType<typeof setImmediate> | undefined
      const timer = setTimeout(() => {
        late = setImmediate(() =>
          resume(Effect.fail(new TierError({ tier: name, operation, reason: timeoutReason })))
        )
      }, timeoutMs)
      const stop = () => {
        clearTimeout(timer)
        if (late !== undefined) clearImmediate(late)
      }
      let sent: Promise<A>
      try {
        sent = send()
      } catch (cause) {
        sent = Promise.reject(cause)
      }
      sent.then(
        (value) => {
          stop()
          resume(Effect.succeed(value))
        },
        (cause: unknown) => {
          stop()
          resume(Effect.fail(fail(operation, cause)))
        }
      )
      return Effect.sync(stop)
    })

  const exec = (
    operation: string,
    batch: () => ChainableCommander
  ): Effect.Effect<Array<unknown>, TierError> =>
    Effect.flatMap(
      runBatch(operation, () => batch().exec()),
      (results) => {
        if (results === null) return Effect.fail(fail(operation, "transaction aborted"))
        const out: Array<unknown> = []
        for (const [error, value] of results) {
          if (error) return Effect.fail(fail(operation, error))
          out.push(value)
        }
        return Effect.succeed(out)
      }
    )

  const now = (operation: string, send: () => Promise<unknown>): Promise<TierError | undefined> => {
    let sent: Promise<unknown>
    try {
      sent = send()
    } catch (cause) {
      sent = Promise.reject(cause)
    }
    return sent.then(
      () => undefined,
      (cause: unknown) => fail(operation, cause)
    )
  }

  return { fail, timeoutMs, run, now, exec }
}

/**
 * `start()` (a command handed to the connection now, answering its failure: Runner's `now`),
 * then `then` at once: what `then` sends on the connection (the bus message) follows that
 * command (`setThen`, `removeThen`). Answers the command's failure and `then`'s result.
 */
export const sendThen = <A>(
  start: () => Promise<TierError | undefined>,
  then: Effect.Effect<A>
): Effect.Effect<readonly [TierError | undefined, A]> =>
  Effect.suspend(() => {
    const outcome = start()
    // Noted as it settles. Its reply comes before the reply to anything `then` sent after it
    // on this connection, so it is usually known by the time `then` is done: no second wait.
    let settled: { readonly error: TierError | undefined } | undefined
    outcome.then((error) => {
      settled = { error }
    })
    return Effect.flatMap(then, (a) =>
      settled !== undefined
        ? Effect.succeed([settled.error, a] as const)
        : Effect.map(
            Effect.promise(() => outcome),
            (error) => [error, a] as const
          )
    )
  })

/** The failure of `effect`, or undefined once it succeeded. */
export const failureOf = (effect: Effect.Effect<unknown, TierError>): Effect.Effect<TierError | undefined> =>
  Effect.match(effect, { onFailure: (error) => error, onSuccess: () => undefined })
