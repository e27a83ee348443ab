/**
 * Starts the demo (`demo/main.ts`) as a child process, as `pnpm demo` does, on a free port.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

const main = fileURLToPath(new URL("../demo/main.ts", import.meta.url))
// `--import tsx` resolves from the examples directory (tsx is a workspace dev dependency).
const cwd = fileURLToPath(new URL("..", import.meta.url))

/** A running demo process. */
export interface Demo {
  readonly url: string
  readonly port: number
  readonly child: ChildProcess
  /** Everything the process printed so far. */
  readonly output: () => string
  /** Sends `signal` and resolves with the exit code and how long the exit took. */
  readonly stop: (signal?: NodeJS.Signals) => Promise<{ code: number | null; ms: number }>
}

/** Starts the demo with `env` added to this process's environment; resolves once it listens. */
export const startDemo = (env: Record<string, string>): Promise<Demo> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", main], {
      cwd,
      env: { ...process.env, PORT: "0", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    let started = false
    const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)))
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      const match = /listening on http:\/\/localhost:(\d+)/.exec(output)
      if (match !== null && !started) {
        started = true
        const port = Number(match[1])
        resolve({
          url: `http://127.0.0.1:${port}`,
          port,
          child,
          output: () => output,
          stop: async (signal = "SIGTERM") => {
            const t0 = performance.now()
            if (child.exitCode === null) child.kill(signal)
            const code = await exited
            return { code, ms: performance.now() - t0 }
          }
        })
      }
    }
    child.stdout.on("data", onData)
    child.stderr.on("data", onData)
    child.once("exit", (code) => {
      if (!started) reject(new Error(`the demo exited (${code}) before listening:\n${output}`))
    })
  })

/** GET/PUT/DELETE/POST with a JSON answer, keeping the response headers. */
// biome-ignore lint/suspicious/noExplicitAny: the tests check the answers' JSON field by field
type Json = any

/** A request's answer. */
export const call = async (
  url: string,
  init?: RequestInit
): Promise<{ status: number; headers: Headers; body: Json }> => {
  const res = await fetch(url, init)
  const text = await res.text()
  return { status: res.status, headers: res.headers, body: text.length > 0 ? JSON.parse(text) : undefined }
}

/**
 * Waits until the demo's cache has no computation under way (`stats.inFlight`), which counts a
 * computation until its lower-tier writes are done. The walkthrough waits for this before an
 * invalidation: a computed value is answered as soon as L1 holds it and written to L2 just
 * after, and an invalidation that overtakes that write does not stop it (the value would then
 * come back from L2).
 */
export const settled = async (url: string): Promise<void> => {
  const deadline = Date.now() + 15_000
  while ((await call(`${url}/stats`)).body.cache.inFlight !== 0) {
    if (Date.now() > deadline) throw new Error("the cache still has computations under way after 15 s")
    await new Promise((r) => setTimeout(r, 20))
  }
}
