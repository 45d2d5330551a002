// The status page's Watch buttons: play a channel's HLS output (stream/ID.m3u8, SPEC §16) in
// the page, with sound. Natively where the browser plays HLS itself (Safari, Chromium's own
// player), else with hls.js (hls.min.js, shipped inside epgd, loaded on first use) over Media
// Source Extensions (Firefox, older Chromium). Nothing comes from outside epgd.
// ?player=hls.js or ?player=native on the page's URL picks one path, to try a browser's other.
"use strict";

(function () {
  const dialog = document.getElementById("watch-dialog");
  const video = document.getElementById("watch-video");
  const title = document.getElementById("watch-title");
  const note = document.getElementById("watch-note");
  const forced = new URLSearchParams(location.search).get("player");
  let hls = null;
  let loading = null;
  let watching = "";

  function say(text) {
    note.textContent = text || "";
  }

  function nativeHls() {
    if (forced === "native" || forced === "hls.js") return forced === "native";
    return video.canPlayType("application/vnd.apple.mpegurl") !== "";
  }

  // hls.js is 600 kB: fetched from epgd once somebody watches in a browser that needs it
  function loadHlsJs() {
    if (window.Hls) return Promise.resolve(window.Hls);
    if (!loading) {
      loading = new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = "hls.min.js";
        script.onload = () => (window.Hls ? resolve(window.Hls) : reject(new Error("hls.min.js did not define Hls")));
        script.onerror = () => {
          loading = null;
          script.remove();
          reject(new Error("hls.min.js could not be loaded from epgd"));
        };
        document.head.append(script);
      });
    }
    return loading;
  }

  function stop() {
    watching = "";
    if (hls) {
      hls.destroy();
      hls = null;
    }
    video.pause();
    video.removeAttribute("src");
    video.load();
    delete video.dataset.channel;
    delete video.dataset.player;
  }

  function play() {
    video.muted = false;
    const started = video.play();
    if (started) {
      started.catch((e) => {
        if (e.name === "NotAllowedError") say("Press ▶ to start: the browser held back the sound.");
        else if (e.name !== "AbortError") say(`Cannot play: ${e.message}`);
      });
    }
  }

  // Chromium's own HLS player refuses a live playlist of fewer than three segments (it starts
  // three from the end, as RFC 8216 §6.3.3 says), and an idle channel's first playlist holds
  // one: wait here until the window has three.
  async function windowReady(url, id) {
    for (let tries = 0; tries < 60 && watching === id; tries += 1) {
      try {
        const response = await fetch(url, { cache: "no-store" });
        const text = await response.text();
        const listed = (text.match(/^#EXTINF:/gm) || []).length;
        if (text.includes("#EXT-X-ENDLIST") || listed >= 3) return true;
        if (!response.ok) {
          say(text.trim() || `epgd answered ${response.status}`); // one line saying why
          if (response.status !== 503) return false;
        }
      } catch (e) {
        say("epgd did not answer; trying again…");
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    return false;
  }

  async function watch(id, name) {
    stop();
    watching = id;
    title.textContent = name || id;
    say("Starting… (an idle channel takes a few seconds)");
    video.dataset.channel = id;
    if (!dialog.open) dialog.showModal();
    const url = `stream/${encodeURIComponent(id)}.m3u8`;
    video.muted = false;
    if (nativeHls()) {
      video.dataset.player = "native";
      // play() inside the click lets this element play with sound once its source is set
      const unlocked = video.play();
      if (unlocked) unlocked.catch(() => {});
      if (!(await windowReady(url, id)) || watching !== id) return;
      video.src = url;
      play();
      return;
    }
    video.dataset.player = "hls.js";
    let Hls;
    try {
      Hls = await loadHlsJs();
    } catch (e) {
      say(e.message);
      return;
    }
    if (watching !== id) return; // closed, or another channel chosen, meanwhile
    if (!Hls.isSupported()) {
      say("This browser plays neither HLS nor Media Source Extensions.");
      return;
    }
    // an idle channel's first playlist comes once its first segment is complete
    hls = new Hls({ enableWorker: false, manifestLoadingTimeOut: 30000, liveSyncDurationCount: 3 });
    hls.on(Hls.Events.MANIFEST_PARSED, play);
    hls.on(Hls.Events.ERROR, (event, data) => {
      if (!data.fatal || !hls) return;
      if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
        say("epgd did not answer; trying again…");
        setTimeout(() => { if (hls && watching === id) hls.startLoad(); }, 2000);
      } else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
      } else {
        say(`Cannot play this channel (${data.details}).`);
        hls.destroy();
        hls = null;
      }
    });
    hls.loadSource(url);
    hls.attachMedia(video);
  }

  video.addEventListener("playing", () => say(""));
  video.addEventListener("error", () => {
    if (watching) say("The browser could not play this channel.");
  });
  dialog.addEventListener("close", stop);
  document.getElementById("watch-close").addEventListener("click", () => dialog.close());
  document.addEventListener("click", (event) => {
    const button = event.target instanceof Element ? event.target.closest("[data-watch]") : null;
    if (button) watch(button.dataset.watch, button.dataset.name);
  });
})();
