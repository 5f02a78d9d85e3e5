// Drives the web console in headless Chromium (playwright-core): a token refused, signing in,
// the graph drawn, an order placed and seen to flow, its provenance opened and followed, and
// the server gone and back. Run by tests/e2e/console.rs, which stops and starts the server
// when this script asks for it (a line on stdout: `stop`, `start`) and answers on stdin.
// Its environment: KNACTOR_URL, KNACTOR_TOKEN (the operator's), KNACTOR_VIEWER_TOKEN,
// PLAYWRIGHT_CORE (the module's directory),
// CHROMIUM (the browser), SCREENSHOTS (a directory).
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';

const env = process.env;
const { chromium } = await import(pathToFileURL(`${env.PLAYWRIGHT_CORE}/index.mjs`));
const input = readline.createInterface({ input: process.stdin });
const replies = input[Symbol.asyncIterator]();

/** Asks the test to do `what`, and waits until it has. */
async function ask(what) {
  console.log(what);
  const { value } = await replies.next();
  if (value !== `${what} done`) throw new Error(`asked to ${what}, the test answered ${value}`);
}

const order = {
  status: 'placed',
  email: 'ada@example.com',
  items: [{ sku: 'lamp', qty: 1, price: 42 }],
  address: { street: '1 rue de Rivoli', city: 'Paris', country: 'FR' },
  card: { number: '4242 4242 4242 4242', expiry: '12/39' },
};

const browser = await chromium.launch({ executablePath: env.CHROMIUM, args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
  const problems = [];
  // Uncaught exceptions (the browser also logs each failed request, which a stopped server
  // makes on purpose).
  page.on('pageerror', (error) => problems.push(error.message));
  page.setDefaultTimeout(20_000);
  await page.goto(`${env.KNACTOR_URL}/ui`);

  // A token the server does not know is refused, and the console stays closed.
  await page.fill('#token', 'not-a-token-of-this-app');
  await page.click('#sign-in button[type=submit]');
  await page.waitForSelector('#sign-in-error:has-text("Not signed in")');
  if (await page.isVisible('#console')) throw new Error('the console opened without a valid token');

  await page.fill('#token', env.KNACTOR_TOKEN);
  await page.click('#sign-in button[type=submit]');
  await page.waitForSelector('#status[data-state="connected"]');
  await page.waitForSelector('#graph [data-store="checkout/orders"]');
  await page.waitForSelector('#graph [data-link="checkout/request-payment"]', { state: 'attached' });
  await page.waitForSelector('#links tr[data-link="email/confirm-order"]');

  await page.click('#graph [data-store="checkout/orders"]');
  await page.waitForSelector('#objects-note:has-text("Watching checkout/orders")');
  const put = await fetch(`${env.KNACTOR_URL}/v1/stores/checkout/orders/objects/ui1`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${env.KNACTOR_TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ data: order }),
  });
  if (!put.ok) throw new Error(`placing the order: ${put.status} ${await put.text()}`);
  // It appears as placed, then flows to completed, live.
  await page.waitForSelector('#objects tr[data-name="ui1"]');
  await page.waitForSelector('#objects tr[data-name="ui1"] td:has-text("completed")');
  // The edges it went through show their rate for a poll.
  await page.waitForFunction(() => {
    const rate = document.querySelector('#links tr[data-link="checkout/request-payment"] td.rate');
    return rate && rate.textContent !== '0.0/s';
  });
  await page.screenshot({ path: `${env.SCREENSHOTS}/console.png` });

  // Its provenance: each field, the edge that wrote it, and what that edge read.
  await page.click('#objects tr[data-name="ui1"]');
  await page.waitForSelector('#why details[data-field="trackingID"] summary:has-text("edge checkout/report-shipment")');
  await page.screenshot({ path: `${env.SCREENSHOTS}/console-why.png`, fullPage: true });
  // A source in the trail opens that object and its own provenance.
  await page.click('#why details[data-field="trackingID"] button:has-text("shipping/shipments/ui1")');
  await page.waitForSelector('#objects-title:has-text("shipping/shipments")');
  await page.waitForSelector('#why-title:has-text("shipping/shipments/ui1")');
  await page.waitForSelector('#why details[data-field="trackingID"]');

  // The server goes away: the console says so, and comes back with it.
  await ask('stop');
  await page.waitForSelector('#status[data-state="disconnected"]');
  await ask('start');
  await page.waitForSelector('#status[data-state="connected"]', { timeout: 60_000 });
  await page.waitForSelector('#objects-note:has-text("Watching shipping/shipments")');

  // Signed out, nothing of the session stays; a viewer sees the graph, and is told it may
  // not read objects.
  await page.click('#sign-out');
  await page.waitForSelector('#sign-in');
  for (const shown of ['#objects tbody tr', '#why details', '#links tbody tr']) {
    if (await page.locator(shown).count()) throw new Error(`${shown} is still shown after signing out`);
  }
  await page.fill('#token', env.KNACTOR_VIEWER_TOKEN);
  await page.click('#sign-in button[type=submit]');
  await page.waitForSelector('#status[data-state="connected"]');
  await page.click('#graph [data-store="checkout/orders"]');
  await page.waitForSelector('#objects-note:has-text("This token may not read checkout/orders")');
  if (await page.locator('#objects tbody tr').count()) throw new Error('a viewer was shown objects');
  if (problems.length) throw new Error(`the page reported errors: ${problems.join('; ')}`);
  console.log('done');
} catch (error) {
  // What the page showed, for whoever reads the failure.
  const page = browser.contexts()[0]?.pages()[0];
  if (page) {
    await page.screenshot({ path: `${env.SCREENSHOTS}/failure.png`, fullPage: true }).catch(() => {});
    const shown = await page.locator('main').innerText().catch(() => '(no page)');
    console.error(`the page showed:\n${shown}`);
  }
  throw error;
} finally {
  input.close();
  await browser.close();
}
