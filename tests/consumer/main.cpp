// Uses the installed primary::client as a Client or Data Vault would: a
// genuine lease verifies, a forged one (payload changed, signature kept) is
// refused, a setup file parses and an agent starts unlicensed without
// contacting anyone. Exit 0 when all of that holds.
#include <primary/client/agent.hpp>
#include <primary/client/lease.hpp>
#include <primary/client/setup.hpp>

#include <cstdio>
#include <string>

namespace {

// Signed with a throwaway Ed25519 key (secret bytes 0..31) for this test:
// {computer: WS-01, license: LIC-CONSUMER-TEST, serial: SN-CONSUMER,
//  issued: 2026-01-01, expires: 2100-01-01}.
constexpr const char* kLeaseKey = "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg";
constexpr const char* kGenuine =
    "hahjb21wdXRlcqVXUy0wMadsaWNlbnNlsUxJQy1DT05TVU1FUi1URVNUpnNlcmlhbKtTTi1DT05TVU1FUqZpc3N1ZWTOaVW5"
    "AKdleHBpcmVzzvSGVwA.1xlTHOgIHOU_rP2bC62CRIBDCMJMZKAQiGR7YPDJFxG-zxw2g2irxooAHOmdiMyIxs584SZb_hb__"
    "xayg_VTCA";
// The same lease claiming license LIC-CONSUMER-FAKE, with the genuine signature.
constexpr const char* kForged =
    "hahjb21wdXRlcqVXUy0wMadsaWNlbnNlsUxJQy1DT05TVU1FUi1GQUtFpnNlcmlhbKtTTi1DT05TVU1FUqZpc3N1ZWTOaVW5"
    "AKdleHBpcmVzzvSGVwA.1xlTHOgIHOU_rP2bC62CRIBDCMJMZKAQiGR7YPDJFxG-zxw2g2irxooAHOmdiMyIxs584SZb_hb__"
    "xayg_VTCA";
constexpr int64_t kNow = 1800000000;  // 2027-01-15

int failures = 0;
void check(bool ok, const std::string& what) {
  std::printf("%s: %s\n", ok ? "ok" : "FAILED", what.c_str());
  if (!ok) ++failures;
}

}  // namespace

int main() {
  namespace pc = primary::client;
  auto genuine = pc::verify_lease(kGenuine, kLeaseKey, kNow);
  check(genuine.ok() && genuine->license == "LIC-CONSUMER-TEST" && genuine->computer == "WS-01",
        "a genuine lease verifies" + (genuine.ok() ? std::string() : ": " + genuine.error()));
  auto forged = pc::verify_lease(kForged, kLeaseKey, kNow);
  check(!forged.ok(), "a forged lease is refused" + (forged.ok() ? std::string() : ": " + forged.error()));
  // Expiry is 4102444800; a verifier's clock may be kLeaseToleranceS off.
  check(pc::verify_lease(kGenuine, kLeaseKey, 4102444800 + pc::kLeaseToleranceS - 1).ok(),
        "a lease just expired passes within the tolerance");
  auto expired = pc::verify_lease(kGenuine, kLeaseKey, 4102444800 + pc::kLeaseToleranceS);
  check(!expired.ok(), "an expired lease is refused");
  check(!pc::verify_lease(kGenuine, kLeaseKey, 4102444800, 0).ok(), "without tolerance, expired at expiry");

  auto setup = pc::parse_setup(R"({"computer":"WS-01","license":"LIC-CONSUMER-TEST","serial":"SN-CONSUMER",)"
                               R"("endpoints":["tcp://127.0.0.1:1"],"lease_key":")" +
                               std::string(kLeaseKey) + R"("})");
  check(setup.ok(), "a setup file parses" + (setup.ok() ? std::string() : ": " + setup.error()));
  if (setup.ok()) {
    pc::LicenseAgent agent(pc::options_from(*setup));
    check(agent.state() == pc::LicenseState::unlicensed && !agent.can_record() && !agent.can_upload(),
          "a new agent is unlicensed and records nothing");
  }
  return failures == 0 ? 0 : 1;
}
