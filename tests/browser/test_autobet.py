"""Auto-bet in the page: the stakes follow the player's rules, and the run stops
at once on an error, a logout, a disconnect, and before a bet the balance cannot pay.

Every bet the page sends is read off its WebSocket (``Tab.sent``), every outcome
off the frames it received: the rule is checked on the wire, not on the page's word.
"""

from __future__ import annotations

import re
from typing import Any

from playwright.async_api import Page, expect

from pillarpayout_ws.engine.fairness import crash_point

from ..server.conftest import CLIENT_SEED
from .conftest import ROUND_MS, Browsing, Tab
from .test_page import money, next_betting, phase, register

PASSWORD = "correct horse battery"
A_ROUND_ID = re.compile(r"^\d+$")


async def start_auto_bet(
    page: Page,
    slot: int,
    *,
    base: str,
    cashout: str,
    on_win: tuple[str, str] = ("reset", "2.00"),
    on_loss: tuple[str, str] = ("multiply", "2.00"),
    rounds: int = 10,
    stop_profit: str = "",
    stop_loss: str = "",
) -> None:
    box = page.locator(f"#ab-box-{slot}")
    if not await box.evaluate("details => details.open"):
        await box.locator("summary").click()
    await page.fill(f"#ab-base-{slot}", base)
    await page.fill(f"#ab-cashout-{slot}", cashout)
    await page.select_option(f"#ab-win-mode-{slot}", on_win[0])
    await page.fill(f"#ab-win-factor-{slot}", on_win[1])
    await page.select_option(f"#ab-loss-mode-{slot}", on_loss[0])
    await page.fill(f"#ab-loss-factor-{slot}", on_loss[1])
    await page.fill(f"#ab-stop-profit-{slot}", stop_profit)
    await page.fill(f"#ab-stop-loss-{slot}", stop_loss)
    await page.fill(f"#ab-rounds-{slot}", str(rounds))
    await page.click(f"#ab-start-{slot}")
    # Running, or already stopped (a refusal can come back at once): the form was taken.
    await expect(page.locator(f"#ab-status-{slot}")).not_to_have_attribute("data-state", "invalid")


def auto_bets(tab: Tab, slot: int = 0) -> list[dict[str, Any]]:
    """The bet frames the page's auto-bet sent for ``slot``."""
    return [f for f in tab.sent_of("bet") if str(f.get("ref", "")).startswith(f"auto{slot}-")]


async def bet_in_play(page: Page, slot: int = 0) -> int:
    """Waits for the run's bet to be acknowledged; returns its round."""
    status = page.locator(f"#ab-status-{slot}")
    await expect(status).to_have_attribute("data-bet-round", A_ROUND_ID)
    return int(await status.get_attribute("data-bet-round") or "")


async def stopped(page: Page, reason: str, slot: int = 0, within_ms: float = ROUND_MS) -> None:
    status = page.locator(f"#ab-status-{slot}")
    await expect(status).to_have_attribute("data-state", "stopped", timeout=within_ms)
    await expect(status).to_have_attribute("data-reason", reason)


async def a_whole_round_passes(page: Page) -> None:
    """A betting window opens and closes: a running auto-bet would have bet in it."""
    await next_betting(page)
    await phase(page, "running")


async def test_auto_bet_doubles_after_a_loss_and_resets_after_a_win(browsing: Browsing) -> None:
    tab = await browsing.open()
    page = tab.page
    await register(page, "marty_g")
    # The test chain's first rounds crash between 1.30x and 3.00x: at 2.50x
    # some win, most lose.
    await start_auto_bet(page, 0, base="1.00", cashout="2.50", rounds=5)
    await stopped(page, "rounds", within_ms=7 * ROUND_MS)

    bets = auto_bets(tab)
    assert len(bets) == 5
    round_of = {f["ref"]: f["round_id"] for f in tab.received_of("bet_accepted")}
    won_rounds = {f["round_id"] for f in tab.received_of("cashed_out") if f.get("slot", 0) == 0}
    stakes = [bet["amount"] for bet in bets]
    rounds = [round_of[bet["ref"]] for bet in bets]
    outcomes = [r in won_rounds for r in rounds]
    # What the server said is what the chain says: a win exactly when it stood to 2.50x.
    chain = browsing.site.chain
    assert outcomes == [crash_point(chain.seed_for(r), CLIENT_SEED) >= 250 for r in rounds]
    assert rounds == list(range(rounds[0], rounds[0] + 5)), rounds  # one bet every round
    assert all(bet["auto_cashout"] == 2.5 and bet.get("slot", 0) == 0 for bet in bets)
    # The martingale: 1.00 to start, twice the last stake after a loss, 1.00 after a win.
    assert stakes[0] == 100
    for stake, after, won in zip(stakes[1:], stakes, outcomes, strict=False):
        assert stake == (100 if won else 2 * after), (stakes, outcomes)
    assert True in outcomes and False in outcomes, outcomes  # both rules were used

    profit = sum(
        (stake * 250 // 100 if won else 0) - stake
        for stake, won in zip(stakes, outcomes, strict=True)
    )
    status = page.locator("#ab-status-0")
    await expect(status).to_have_attribute("data-played", "5")
    await expect(status).to_have_attribute("data-profit", str(profit))
    await expect(status).to_contain_text(f"5 rounds played, profit {money(profit)}")
    await expect(page.locator("#balance")).to_have_text(money(100_000 + profit))
    await tab.shot("auto-bet-martingale")
    assert tab.errors == []


async def test_auto_bet_stops_on_an_error_a_logout_and_before_betting_more_than_the_balance(
    browsing: Browsing,
) -> None:
    tab = await browsing.open()
    page = tab.page
    await register(page, "stoppy")

    # An error for one of its bets: 0.05 is below the server's minimum bet.
    await start_auto_bet(page, 0, base="0.05", cashout="2.00")
    await stopped(page, "error")
    await expect(page.locator("#ab-status-0")).to_contain_text("refused")
    await expect(page.locator("#bet-error-0")).to_have_attribute("data-code", "invalid_amount")
    assert [bet["amount"] for bet in auto_bets(tab)] == [5]
    await a_whole_round_passes(page)
    assert len(auto_bets(tab)) == 1

    # A logout, with a bet in play: stopped at once, and it stays stopped
    # when the player logs in again.
    await start_auto_bet(page, 0, base="1.00", cashout="50.00")
    await bet_in_play(page)
    await page.click("#logout")
    await stopped(page, "logout")
    await expect(page.locator("#auth")).to_be_visible()
    sent = len(auto_bets(tab))
    await page.click("#tab-login")
    await page.fill("#login-form [name=username]", "stoppy")
    await page.fill("#login-form [name=password]", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#username")).to_have_text("stoppy")
    await a_whole_round_passes(page)
    await expect(page.locator("#ab-status-0")).to_have_attribute("data-reason", "logout")
    assert len(auto_bets(tab)) == sent

    # Never more than the balance: half of it fits, twice that after a loss does not.
    await next_betting(page)
    balance = int(await page.locator("#balance").get_attribute("data-cents") or "")
    base = balance // 2
    await start_auto_bet(page, 0, base=money(base), cashout="50.00")
    await stopped(page, "balance", within_ms=2 * ROUND_MS)
    await expect(page.locator("#ab-status-0")).to_contain_text(
        f"the next bet, {money(2 * base)}, is more than your balance, {money(balance - base)}"
    )
    assert [bet["amount"] for bet in auto_bets(tab)[sent:]] == [base]
    await expect(page.locator("#balance")).to_have_text(money(balance - base))
    await tab.shot("auto-bet-stopped-at-balance")
    assert tab.errors == []


async def test_auto_bet_stops_when_the_connection_drops(browsing: Browsing) -> None:
    tab = await browsing.open()
    page = tab.page
    await register(page, "dropped")
    await start_auto_bet(page, 0, base="1.00", cashout="50.00")
    await bet_in_play(page)
    sent = len(auto_bets(tab))
    browsing.site.kill()
    await stopped(page, "disconnect")
    await expect(page.locator("#ab-status-0")).to_contain_text("connection")
    await browsing.site.restart()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=60_000)
    await expect(page.locator("#username")).to_have_text("dropped")
    # Back on the server, the page places nothing by itself.
    await a_whole_round_passes(page)
    assert len(auto_bets(tab)) == sent
    await expect(page.locator("#ab-status-0")).to_have_attribute("data-reason", "disconnect")
    assert all(error.startswith("WebSocket connection to") for error in tab.errors), tab.errors


def expected_run(plan: dict[str, Any], crashes: list[int]) -> tuple[list[int], str | None]:
    """The stakes a run bets over rounds crashing at ``crashes``, and why it stopped."""
    stake, profit, stakes = plan["base"], 0, []
    for played, crash in enumerate(crashes, start=1):
        stakes.append(stake)
        won = crash >= plan["autoCashout"]
        profit += (stake * plan["autoCashout"] // 100 if won else 0) - stake
        rule = plan["onWin"] if won else plan["onLoss"]
        stake = plan["base"] if rule["mode"] == "reset" else max(1, stake * rule["factor"] // 100)
        if plan["stopProfit"] is not None and profit >= plan["stopProfit"]:
            return stakes, "profit"
        if plan["stopLoss"] is not None and -profit >= plan["stopLoss"]:
            return stakes, "loss"
        if played >= plan["rounds"]:
            return stakes, "rounds"
    return stakes, None


async def test_auto_bet_rules_in_the_page_match_the_rules_as_written(browsing: Browsing) -> None:
    tab = await browsing.open()
    reset = {"mode": "reset", "factor": None}

    def times(factor: int) -> dict[str, Any]:
        return {"mode": "multiply", "factor": factor}

    def plan(**given: Any) -> dict[str, Any]:
        base = {"base": 100, "autoCashout": 200, "onWin": reset, "onLoss": times(200)}
        return base | {"stopProfit": None, "stopLoss": None, "rounds": 100} | given

    cases = [
        (plan(stopProfit=150), [250, 130, 210, 300, 120]),  # stops on profit
        (plan(stopLoss=600), [130, 110, 150, 140, 900]),  # stops on loss: 100+200+400
        (plan(onWin=times(150), onLoss=reset, rounds=4), [200, 300, 100, 500]),
        (plan(autoCashout=1000, onLoss=times(125), rounds=6), [100, 200, 300, 400, 500, 600]),
        (plan(base=333, onLoss=times(101), rounds=3), [101, 102, 103]),  # floor of cents
    ]
    results = await tab.page.evaluate(
        """async (cases) => {
          const { AutoBetRun, parseRule } = await import(new URL("autobet.js", location.href));
          const runs = cases.map(([plan, crashes]) => {
            const run = new AutoBetRun(plan);
            const stakes = [];
            for (const crash of crashes) {
              stakes.push(run.stake);
              const won = crash >= plan.autoCashout;
              const payout = won ? Math.floor((run.stake * plan.autoCashout) / 100) : 0;
              const reason = run.settle(run.stake, payout);
              if (reason !== null) return [stakes, reason];
            }
            return [stakes, null];
          });
          const rules = [
            ["multiply", "1.5"], ["multiply", "0.99"], ["multiply", "x"],
            ["multiply", "2.005"], ["reset", "anything"],
          ].map(([mode, factor]) => parseRule(mode, factor));
          return { runs, rules };
        }""",
        cases,
    )
    for (given, crashes), (stakes, reason) in zip(cases, results["runs"], strict=True):
        assert (stakes, reason) == expected_run(given, crashes), (given, crashes)
    assert [r[1] for r in results["runs"]] == ["profit", "loss", "rounds", "rounds", "rounds"]
    assert results["rules"] == [times(150), None, None, None, reset]
    assert tab.errors == []
