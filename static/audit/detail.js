// The detail page: a frame in the timeline seeks the video to its offset.
(function () {
  "use strict";
  const player = document.getElementById("player");
  if (!player) return;
  document.querySelectorAll("[data-seek]").forEach((button) => {
    button.addEventListener("click", () => {
      player.currentTime = Number(button.dataset.seek);
      player.pause();
      player.scrollIntoView({ block: "nearest" });
    });
  });
})();
