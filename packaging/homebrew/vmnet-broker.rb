# Homebrew formula for a tap (for example vmnet-broker/homebrew-tap):
#
#   brew install vmnet-broker/tap/vmnet-broker
#   sudo vmnet-broker install
#
# release.yml fills in `url` and `sha256` for each release (the source
# tarball it publishes, made with `git archive`) and attaches the result to
# the GitHub release as vmnet-broker.rb; copy that file into the tap.
class VmnetBroker < Formula
  desc "Shared vmnet network broker for macOS virtual machines"
  homepage "https://github.com/vmnet-broker/vmnet-broker"
  url "https://github.com/vmnet-broker/vmnet-broker/releases/download/v0.1.0/vmnet-broker-0.1.0-src.tar.gz"
  sha256 "0000000000000000000000000000000000000000000000000000000000000000"
  license "Apache-2.0"
  head "https://github.com/vmnet-broker/vmnet-broker.git", branch: "main"

  # The vmnet network API the broker serves first shipped in macOS 26.
  depends_on "rust" => :build
  depends_on macos: :tahoe

  def install
    system "cargo", "install", *std_cargo_args(path: "crates/daemon")

    # Manual pages and completions come from the command's own definition.
    mkdir "man1"
    system bin/"vmnet-broker", "man", "--out-dir", "man1"
    man1.install Dir["man1/*.1"]
    generate_completions_from_executable(bin/"vmnet-broker", "completions",
                                         shells: [:bash, :zsh, :fish])

    # `vmnet-broker install` copies the binary into
    # /Library/Application Support/vmnet-broker and signs that copy with
    # this entitlement; it is kept here for reference.
    pkgshare.install "macos/entitlements.plist"
  end

  def caveats
    <<~EOS
      vmnet-broker runs as a system launchd service. Set it up once with:
        sudo vmnet-broker install
      then check it with:
        vmnet-broker status
      After `brew upgrade vmnet-broker`, run `sudo vmnet-broker install` again
      to update the installed service. To remove the service:
        sudo vmnet-broker uninstall --remove-account --remove-logs
    EOS
  end

  test do
    assert_match version.to_s, shell_output("#{bin}/vmnet-broker --version")
    # The service plan, printed without changing anything.
    assert_match "launchctl bootstrap",
                 shell_output("#{bin}/vmnet-broker install --user --dry-run")
    # An empty configuration directory is valid.
    (testpath/"conf").mkpath
    assert_match "Configuration OK",
                 shell_output("#{bin}/vmnet-broker check --config-dir #{testpath}/conf")
    assert_match ".SH SUBCOMMANDS", shell_output("#{bin}/vmnet-broker man")
  end
end
