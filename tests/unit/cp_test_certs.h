/* Test fixtures for the control plane's TLS entities: EC P-256 pairs valid for 100 years
 * (made with `openssl req -x509 -days 36500`). LEAF_CERT/LEAF_KEY match, OTHER_KEY matches
 * nothing here, CA_CERT has the CA basic constraint (its key is OTHER_KEY). */
#ifndef STRAIT_CP_TEST_CERTS_H
#define STRAIT_CP_TEST_CERTS_H

static const char LEAF_CERT[] = "-----BEGIN CERTIFICATE-----\n"
                                "MIIBdzCCARygAwIBAgIUdTx0k071YmC8CgJv98SjFRouaSkwCgYIKoZIzj0EAwIw\n"
                                "ETEPMA0GA1UEAwwGYS50ZXN0MCAXDTI2MTEyNjE0MjIzM1oYDzIxMjYxMTAyMTQy\n"
                                "MjMzWjARMQ8wDQYDVQQDDAZhLnRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC\n"
                                "AAT2mRmpNMTtbIOm5X0L31O7vcBb5KNcyRo0078fIDkijJvcHzNT5uHpbCXPUWWQ\n"
                                "jxOhoBl7gfqdp/1/JqXRZ2kPo1AwTjAdBgNVHQ4EFgQUOPciJu4vC5AGjVip5Mfx\n"
                                "am9/rFAwHwYDVR0jBBgwFoAUOPciJu4vC5AGjVip5Mfxam9/rFAwDAYDVR0TAQH/\n"
                                "BAIwADAKBggqhkjOPQQDAgNJADBGAiEAl7p9/VBXbcGCYZNbr4MNT4Br2bzmcM1L\n"
                                "19BcLi0Hl2kCIQDmLtzElR3WXjRQ3O8b/bPt6CkMYNquVIx/d7SqqmHO6g==\n"
                                "-----END CERTIFICATE-----\n";

static const char LEAF_KEY[] = "-----BEGIN PRIVATE KEY-----\n"
                               "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg4ufeOS6eO9DpPzIM\n"
                               "uKKzv4Fnb+f2jAywh1bjJkqWwNKhRANCAAT2mRmpNMTtbIOm5X0L31O7vcBb5KNc\n"
                               "yRo0078fIDkijJvcHzNT5uHpbCXPUWWQjxOhoBl7gfqdp/1/JqXRZ2kP\n"
                               "-----END PRIVATE KEY-----\n";

static const char OTHER_KEY[] = "-----BEGIN PRIVATE KEY-----\n"
                                "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgbmawCKSGhn4+xnJA\n"
                                "y0ZN8N5ke1HgsSWbG5K9ZZHZ+ZuhRANCAASJHNXAg/KoTUqhvBw0iwj6BhU/Hzs+\n"
                                "lSBblBZN7kPlpOMCIY3LH4YOKUZUc9vtqYMDp+TGTqhcfqBfU/aThrSK\n"
                                "-----END PRIVATE KEY-----\n";

static const char CA_CERT[] = "-----BEGIN CERTIFICATE-----\n"
                              "MIIBfDCCASGgAwIBAgIUfmkug28QnMMwKfdk5VJhz6Im2CQwCgYIKoZIzj0EAwIw\n"
                              "EjEQMA4GA1UEAwwHY2EudGVzdDAgFw0yNjExMjYxNDIyMzNaGA8yMTI2MTEwMjE0\n"
                              "MjIzM1owEjEQMA4GA1UEAwwHY2EudGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEH\n"
                              "A0IABIkc1cCD8qhNSqG8HDSLCPoGFT8fOz6VIFuUFk3uQ+Wk4wIhjcsfhg4pRlRz\n"
                              "2+2pgwOn5MZOqFx+oF9T9pOGtIqjUzBRMB0GA1UdDgQWBBTBoAANoQihERT6Hcw/\n"
                              "cDL0D833PjAfBgNVHSMEGDAWgBTBoAANoQihERT6Hcw/cDL0D833PjAPBgNVHRMB\n"
                              "Af8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQDMjMRhPnHZOdENRQH+Tl7xG+AJ\n"
                              "4dE9LN9dgTjmgHBcegIhAJ6HM3iJiqUvVGRLQiI6rFj7kuQr4GyHMCd7XD7nStGb\n"
                              "-----END CERTIFICATE-----\n";

#endif
