// A case page opened in a meeting room (`?meeting=`): the chair presents, and everyone else
// follows whoever presents, as if they had clicked "Follow" themselves.
export function joinMeeting(presence, meeting) {
  if (meeting.presents) {
    presence.present();
    return;
  }
  let followed = null;
  const followPresenter = () => {
    const presenter = presence.presenter();
    if (!presenter || presenter.clientId === presence.clientId() || presence.isPresenting()) return;
    // Once per presenter: "Stop following" is respected until someone else presents.
    if (followed === presenter.clientId) return;
    followed = presenter.clientId;
    if (presence.following !== presenter.clientId) presence.follow(presenter.clientId);
  };
  presence.addEventListener("people", followPresenter);
  followPresenter();
}
