package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserStyleDump writes every element's computed style on the main pages, at desktop
// and phone widths, to $TUNELAB_STYLE_DUMP/<page>.txt, so two builds can be diffed (a CSS
// refactoring that must not change how anything looks). It skips unless the variable is set.
func TestBrowserStyleDump(t *testing.T) {
	out := os.Getenv("TUNELAB_STYLE_DUMP")
	if out == "" {
		t.Skip("TUNELAB_STYLE_DUMP not set")
	}
	findChromium(t)
	addr, _ := startServerWith(t, runEnv(t), t.TempDir())
	b := newBrowserWithin(t, "http://"+addr, 5*time.Minute)
	b.do("desktop", chromedp.EmulateViewport(1280, 800))
	b.signUpInBrowser("styles@example.com", "correct horse battery staple")
	b.open("/datasets", http.StatusOK)
	b.do("use the chat sample", chromedp.Click(chromedp.CSS(`[data-testid=sample-chat] button, button[data-testid=sample-chat]`), chromedp.NodeVisible))
	b.waitFor("the sample's page", `/^\/datasets\/\d+$/.test(location.pathname)`)
	ds := eval[string](b, `location.pathname`)
	b.open("/runs/new", http.StatusOK)
	b.waitFor("the run form", has(`form [name=epochs]`)+" && "+htmxReady)
	b.do("set epochs", chromedp.SetValue(chromedp.CSS(`form [name=epochs]`), "1", chromedp.NodeVisible))
	b.do("start the run", chromedp.Click(chromedp.CSS(`[data-testid=start-run]`), chromedp.NodeVisible))
	b.waitFor("the run page", `/^\/runs\/\d+$/.test(location.pathname)`)
	run := eval[string](b, `location.pathname`)
	b.waitForWithin("the run to succeed", `document.querySelector("[data-testid=run-live-panel]").dataset.status === "succeeded"`, 3*time.Minute)

	const dump = `(() => {
	  const lines = [];
	  const all = document.querySelectorAll("body *");
	  all.forEach((el, i) => {
	    const cs = getComputedStyle(el), parts = [];
	    for (let j = 0; j < cs.length; j++) { const p = cs[j]; parts.push(p + ":" + cs.getPropertyValue(p)); }
	    for (const pseudo of ["::before", "::after"]) {
	      const ps = getComputedStyle(el, pseudo);
	      if (ps.content && ps.content !== "none" && ps.content !== "normal") {
	        for (let j = 0; j < ps.length; j++) { const p = ps[j]; parts.push(pseudo + p + ":" + ps.getPropertyValue(p)); }
	      }
	    }
	    lines.push(i + " " + el.tagName.toLowerCase() + "." + (el.getAttribute("class") || "") + " [" + (el.dataset.testid || "") + "] " + parts.join("; "));
	  });
	  return lines.join("\n");
	})()`
	pages := []string{"/", "/datasets", ds, "/runs", run, "/runs/new", "/compare?run=" + filepath.Base(run), "/billing", "/settings", "/terms"}
	for _, w := range []int64{1280, 390} {
		if w == 390 {
			b.do("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait))
		}
		for i, p := range pages {
			b.open(p, http.StatusOK)
			b.waitFor("loaded", `document.readyState === "complete"`)
			time.Sleep(500 * time.Millisecond)
			s := eval[string](b, dump)
			name := filepath.Join(out, fmt.Sprintf("%d-%02d.txt", w, i))
			if err := os.WriteFile(name, []byte(p+"\n"+s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
