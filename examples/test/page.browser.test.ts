/**
 * The live page in headless Chromium (Debian's `chromium` package, driven by playwright-core):
 * its figures follow requests made to the demo and a stampede fired from its form. Takes a
 * screenshot, which replaces the README's (docs/demo.png) when UPDATE_DEMO_SCREENSHOT=1.
 * Fails, never skips, when chromium is missing.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { type BrowserContext, chromium, type Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { call, type Demo, startDemo } from "./demoProcess.js"

const CHROMIUM = "/usr/bin/chromium"
const SCREENSHOT = fileURLToPath(new URL("../../docs/demo.png", import.meta.url))
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync"
]

const dataDir = mkdtempSync(join(tmpdir(), "tiercache-demo-page-"))
const profile = mkdtempSync(join(tmpdir(), "tiercache-chromium-"))
let demo: Demo
let browser: BrowserContext
let page: Page

const text = async (id: string) => (await page.locator(`#${id}`).textContent()) ?? ""
/** Waits until the page (which polls /stats every second) shows `expected` in `#id`. */
const shows = (id: string, expected: string) =>
  expect.poll(() => text(id), { timeout: 30_000, interval: 100 }).toBe(expected)

describe("the live page in headless Chromium", () => {
  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `${CHROMIUM} not found: install Debian's chromium package (apt-get install -y chromium)`
      )
    }
    demo = await startDemo({ DEMO_DATA_DIR: dataDir })
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
      viewport: { width: 1000, height: 700 }
    })
    page = await browser.newPage()
  })
  afterAll(async () => {
    await browser?.close()
    if (demo !== undefined && demo.child.exitCode === null) await demo.stop("SIGKILL")
    rmSync(dataDir, { recursive: true, force: true })
    rmSync(profile, { recursive: true, force: true })
  })

  it("shows the cache's figures, updated after requests and after a stampede", async () => {
    await page.goto(demo.url)
    await shows("requests", "0")
    expect(await text("instance")).toContain("file-system")

    // one computation, then two L1 hits
    for (let i = 0; i < 3; i++) await call(`${demo.url}/products/3`)
    await shows("requests", "3")
    expect(await text("l1-ratio")).toBe("66.7% (2)")
    expect(await text("misses")).toBe("1")
    expect(await text("computations")).toBe("1")
    expect(await text("upstream")).toBe("1")

    // the page's stampede: 200 concurrent reads of product 7, one upstream call
    await page.locator("#stampede-n").fill("200")
    await page.locator("#stampede-id").fill("7")
    await page.locator("#stampede button[type=submit]").click()
    await expect
      .poll(() => page.locator("#log").getAttribute("data-stampedes"), { timeout: 60_000, interval: 100 })
      .toBe("1")
    expect(await text("log")).toContain("stampede: 200 reads of product 7 -> 1 upstream call(s); computed 1")
    await shows("requests", "203")
    expect(await text("upstream")).toBe("2")
    expect(await text("computations")).toBe("2")
    expect(
      Number(await text("coalesced")) + Number(await text("l1-ratio").then((t) => /\((\d+)\)/.exec(t)![1]))
    ).toBe(201)
    expect(await text("errors")).toMatch(/^\d+$/)
    expect(await text("breakers")).toContain("file")

    const shot = join(profile, "demo.png")
    await page.screenshot({ path: shot })
    const png = readFileSync(shot)
    expect(png.subarray(1, 4).toString()).toBe("PNG")
    expect(png.length).toBeLessThan(200_000)
    if (process.env.UPDATE_DEMO_SCREENSHOT === "1") copyFileSync(shot, SCREENSHOT)
  })
})
