/**
 * A tier's defects as its failures. The Tier interface is public, and a tier of the user's can
 * have bugs: a throw inside `Effect.sync`, an `Effect.die`, a method that throws when called, a
 * failure that is not a TierError. The cache calls every tier through {@link shield}, which makes
 * each of them the call's TierError (the defect in `cause`): counted, logged and fed to the
 * breaker as any failure of the tier, so that a read through the cache goes on as a miss and a
 * write as a write that missed that tier. An interruption is never made a failure: it reaches
 * the caller as it is.
 */
import { Cause, Effect, Option } from "effect"
import { TierError } from "../CacheError.js"
import type { Entry } from "../Entry.js"
import type { Tier, TierHealth } from "../Tier.js"
import { describe } from "./describe.js"
import { entryShapeProblem } from "./tierInput.js"

const messageOf = (defect: unknown): string => {
  try {
    return defect instanceof Error ? defect.message : describe(defect)
  } catch {
    return "a defect that could not be read"
  }
}

/** The TierError of a tier's call that `how` (died, threw...) with `defect`. */
export const defectError = (tier: string, operation: string, how: string, defect: unknown): TierError =>
  new TierError({ tier, operation, reason: `${how}: ${messageOf(defect)}`, cause: defect })

/**
 * The TierError of a tier's call that ended in `cause`: its own, or a defect or another failure
 * made one; undefined for an interruption (even beside a defect), which must reach the caller.
 */
export const failureOf = (
  tier: string,
  operation: string,
  cause: Cause.Cause<unknown>
): TierError | undefined => {
  if (Cause.isInterrupted(cause)) return undefined
  const failure = Cause.failureOption(cause)
  if (failure._tag === "Some") {
    const error = failure.value
    return error instanceof TierError
      ? error
      : defectError(tier, operation, "failed with a non-TierError", error)
  }
  const defect = Cause.dieOption(cause)
  return defectError(tier, operation, "died", defect._tag === "Some" ? defect.value : Cause.squash(cause))
}

/** What is wrong with a `get`'s answer (an Option of a well-formed entry), or undefined. */
const answerProblem = (answer: unknown): string | undefined => {
  if (!Option.isOption(answer)) return `${describe(answer)}, not an Option of an Entry`
  if (answer._tag === "None") return undefined
  const p = entryShapeProblem(answer.value)
  return p === undefined ? undefined : `a malformed entry: entry${p}`
}

/** What is wrong with a `getMany`'s answer for `count` keys, or undefined. */
const answersProblem = (answers: unknown, count: number): string | undefined => {
  if (!Array.isArray(answers)) return `${describe(answers)}, not an array of Options`
  if (answers.length !== count) return `${answers.length} answers for ${count} keys`
  for (let i = 0; i < answers.length; i++) {
    const p = answerProblem(answers[i])
    if (p !== undefined) return `at [${i}] ${p}`
  }
  return undefined
}

/** What is wrong with a `writeIfNewer`'s answer for `count` changes, or undefined. */
const appliedProblem = (answers: unknown, count: number): string | undefined => {
  if (!Array.isArray(answers)) return `${describe(answers)}, not an array of booleans`
  if (answers.length !== count) return `${answers.length} answers for ${count} changes`
  for (let i = 0; i < answers.length; i++) {
    const answer: unknown = answers[i]
    if (typeof answer !== "boolean") return `at [${i}] ${describe(answer)}, not a boolean`
  }
  return undefined
}

/**
 * `tier` (a plain object, plainTier.ts) with every operation's defects made its TierErrors, and
 * the answers of its reads and of `writeIfNewer` checked: an answer the Tier contract does not
 * allow (an entry without tags, times that are not numbers, something else than an Option, a
 * getMany answer of another length than its keys, a writeIfNewer answer that is not one boolean
 * per change) is the call's TierError, before the cache uses it. The
 * one-step writes (`setNow`, `removeNow`) are kept as they are: their caller catches a throw
 * (tierAccess.ts `startNow`).
 */
export const shield = (tier: Tier.Service): Tier.Service => {
  const name = tier.name
  /** `start()`, or the TierError of a method that threw when it was called. */
  const started = <A>(
    operation: string,
    start: () => Effect.Effect<A, TierError>
  ): Effect.Effect<A, TierError> => {
    try {
      return start()
    } catch (defect) {
      return Effect.fail(defectError(name, operation, "threw", defect))
    }
  }
  /** A call's end in `cause` as its TierError (failureOf); an interruption as it is. */
  const failed = (operation: string, cause: Cause.Cause<unknown>): Effect.Effect<never, TierError> => {
    const error = failureOf(name, operation, cause)
    return error === undefined ? Effect.failCause(cause as Cause.Cause<never>) : Effect.fail(error)
  }
  const call = <A>(
    operation: string,
    start: () => Effect.Effect<A, TierError>
  ): Effect.Effect<A, TierError> =>
    Effect.catchAllCause(started(operation, start), (cause) => failed(operation, cause))
  /**
   * A call whose answer is checked by `problem` (a read, writeIfNewer): an answer it refuses is
   * the call's TierError.
   * One Effect step more than `call` (its answer's continuation), not two (a flatMap inside it).
   */
  const read = <A>(
    operation: string,
    start: () => Effect.Effect<A, TierError>,
    problem: (answer: A) => string | undefined
  ): Effect.Effect<A, TierError> =>
    Effect.matchCauseEffect(started(operation, start), {
      onFailure: (cause) => failed(operation, cause),
      onSuccess: (answer) => {
        let p: string | undefined
        try {
          p = problem(answer)
        } catch (defect) {
          // A Proxy's trap, a getter: an answer that cannot be read.
          return Effect.fail(defectError(name, operation, "answered what could not be read", defect))
        }
        return p === undefined
          ? Effect.succeed(answer)
          : Effect.fail(new TierError({ tier: name, operation, reason: `answered ${p}` }))
      }
    })
  /**
   * A call that runs `then` (the bus message) once its command is sent: one that dies still runs
   * `then` once, if it had not.
   */
  const callThen = <A>(
    operation: string,
    start: (then: Effect.Effect<A>) => Effect.Effect<readonly [TierError | undefined, A]>,
    then: Effect.Effect<A>
  ): Effect.Effect<readonly [TierError | undefined, A]> => {
    let ran: { readonly value: A } | undefined
    const tracked = Effect.map(then, (value) => {
      ran = { value }
      return value
    })
    const failedThen = (error: TierError) =>
      ran !== undefined
        ? Effect.succeed([error, ran.value] as const)
        : Effect.map(then, (value) => [error, value] as const)
    let effect: Effect.Effect<readonly [TierError | undefined, A]>
    try {
      effect = start(tracked)
    } catch (defect) {
      return failedThen(defectError(name, operation, "threw", defect))
    }
    return Effect.catchAllCause(effect, (cause) => {
      const error = failureOf(name, operation, cause)
      return error === undefined ? Effect.failCause(cause as Cause.Cause<never>) : failedThen(error)
    })
  }
  const health = tier.health
  const unhealthy = (cause: Cause.Cause<unknown>): Effect.Effect<TierHealth> =>
    Cause.isInterrupted(cause)
      ? Effect.failCause(cause as Cause.Cause<never>)
      : Effect.succeed({
          name,
          healthy: false,
          detail: `health check died: ${messageOf(Cause.squash(cause))}`
        })
  return {
    ...tier,
    get: (key) => read("get", () => tier.get(key), answerProblem),
    getMany: (keys) =>
      read(
        "getMany",
        () => tier.getMany(keys),
        (answers) => answersProblem(answers, keys.length)
      ),
    set: (key, entry) => call("set", () => tier.set(key, entry)),
    setMany: (entries) => call("setMany", () => tier.setMany(entries)),
    remove: (keys) => call("remove", () => tier.remove(keys)),
    removeMatching: (glob) => call("removeMatching", () => tier.removeMatching(glob)),
    clear: call("clear", () => tier.clear),
    health: Effect.catchAllCause(
      Effect.suspend(() => health),
      unhealthy
    ),
    ...(tier.writeIfNewer === undefined
      ? {}
      : {
          writeIfNewer: (changes) =>
            read(
              "writeIfNewer",
              () => tier.writeIfNewer!(changes),
              (answers) => appliedProblem(answers, changes.length)
            )
        }),
    ...(tier.setThen === undefined
      ? {}
      : {
          setThen: <A>(key: string, entry: Entry, then: Effect.Effect<A>) =>
            callThen("set", (t: Effect.Effect<A>) => tier.setThen!(key, entry, t), then)
        }),
    ...(tier.removeThen === undefined
      ? {}
      : {
          removeThen: <A>(keys: ReadonlyArray<string>, then: Effect.Effect<A>) =>
            callThen("remove", (t: Effect.Effect<A>) => tier.removeThen!(keys, t), then)
        })
  }
}
