/**
 * What RedisTier offers the cache's auto-recovery: a conditional write (`writeIfNewer`, one Lua
 * script that compares the stored entry's `createdAt` with the change's time and writes or
 * removes only when the stored entry is not newer), and the command connection's readiness
 * after a reconnection (`ready`).
 */
import type { CacheError, Entry, Tier } from "@tiercache/core"
import { Entry as EntryModule } from "@tiercache/core"
import { Effect, Stream } from "effect"
import type { Redis } from "ioredis"

/**
 * KEYS[i], ARGV[3i-2] the change's time, ARGV[3i-1] the envelope ('' removes), ARGV[3i] the PX.
 * The stored entry's createdAt is read from the envelope's tail (`"c":<ms>}` is its last field),
 * so a large value is not copied into the script; a value that is no entry is replaced.
 */
const SCRIPT = `
local out = {}
for i = 1, #KEYS do
  local at = tonumber(ARGV[3 * i - 2])
  local value = ARGV[3 * i - 1]
  local tail = redis.pcall('GETRANGE', KEYS[i], -48, -1)
  local created = nil
  if type(tail) == 'string' then created = tonumber(string.match(tail, '"c":(%-?[%d%.eE%+]+)}$')) end
  if created ~= nil and created > at then
    out[i] = 0
  else
    if value == '' then redis.call('UNLINK', KEYS[i]) else redis.call('SET', KEYS[i], value, 'PX', ARGV[3 * i]) end
    out[i] = 1
  end
end
return out
`

const COMMAND = "tiercacheWriteIfNewer"

/** Changes per script call. */
const CHUNK = 128

interface Scripted {
  readonly tiercacheWriteIfNewer: (numKeys: number, ...args: Array<string>) => Promise<Array<number>>
}

/** The conditional write of a tier on `client`, keys under `prefix`. */
export const writeIfNewer = (
  client: Redis,
  prefix: string,
  now: () => number,
  fail: (cause: unknown) => CacheError.TierError
): ((
  changes: ReadonlyArray<Tier.Tier.Change>
) => Effect.Effect<ReadonlyArray<boolean>, CacheError.TierError>) => {
  if (!(COMMAND in client)) client.defineCommand(COMMAND, { lua: SCRIPT })
  const scripted = client as unknown as Scripted
  const call = (chunk: ReadonlyArray<Tier.Tier.Change>) =>
    Effect.tryPromise({
      try: () => {
        const t = now()
        const keys: Array<string> = []
        const args: Array<string> = []
        for (const change of chunk) {
          const entry: Entry.Entry | undefined = change.entry
          const px = entry === undefined ? 0 : Math.ceil(entry.staleUntil - t)
          keys.push(prefix + change.key)
          args.push(String(change.at), px > 0 ? EntryModule.serialize(entry!) : "", String(Math.max(1, px)))
        }
        return scripted.tiercacheWriteIfNewer(keys.length, ...keys, ...args)
      },
      catch: fail
    })
  return (changes) =>
    Effect.map(
      Effect.forEach(
        Array.from({ length: Math.ceil(changes.length / CHUNK) }, (_, i) =>
          changes.slice(i * CHUNK, (i + 1) * CHUNK)
        ),
        call,
        { concurrency: 4 }
      ),
      (replies) => replies.flat().map((applied) => applied === 1)
    )
}

/** Emits each time `client` is ready again (every "ready" after the first connection). */
export const ready = (client: Redis): Stream.Stream<void> =>
  Stream.async<void>((emit) => {
    const onReady = () => {
      emit.single(undefined)
    }
    client.on("ready", onReady)
    return Effect.sync(() => {
      client.off("ready", onReady)
    })
  })
